"""The sweep against real tmux servers in a private TMUX_TMPDIR."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from forge_tmux.probe import SocketState, probe_path
from forge_tmux_testing.cli import CliResult
from forge_tmux_testing.processes import pid_alive, wait_for
from forge_tmux_testing.tmux_world import TmuxEnv, lock_held_elsewhere, needs_tmux, tmux_server_pids

pytestmark = needs_tmux


def by_path(report: dict[str, object]) -> dict[str, dict[str, Any]]:
    sockets = report["sockets"]
    assert isinstance(sockets, list)
    return {s["path"]: s for s in sockets}


def test_sigkilled_server_socket_removed_live_neighbour_kept(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    live = tmux_env.start("live")
    stale = tmux_env.stale("crashed")

    result = cli("sweep", "--json")

    assert result.code == 0, result.err
    report = result.json()
    sockets = by_path(report)
    assert sockets[stale]["state"] == "stale"
    assert sockets[stale]["removed"] is True
    assert sockets[live.path]["state"] == "live"
    assert sockets[live.path]["removed"] is False
    assert not os.path.lexists(stale)
    assert not os.path.lexists(stale + ".lock")
    assert os.path.exists(live.path)
    assert tmux_env.answers(live)
    assert pid_alive(live.pid)
    assert report["summary"] == {
        "live": 1,
        "stale": 1,
        "removed": 1,
        "unknown": 0,
        "skipped": 0,
        "locks_removed": 0,
    }
    assert report["dirs"] == [{"path": tmux_env.sockdir, "status": "swept", "reason": ""}]
    # Every removal is logged on stderr with its path and reason.
    assert f"removed stale tmux socket {stale}" in result.err


def test_sigstopped_server_is_kept(tmux_env: TmuxEnv, cli: Callable[..., CliResult]) -> None:
    hung = tmux_env.start("hung")
    os.kill(hung.pid, signal.SIGSTOP)
    try:
        result = cli("sweep", "--json", "--timeout", "1")
        assert result.code == 0, result.err
        entry = by_path(result.json())[hung.path]
        assert entry["state"] == "live"
        assert entry["removed"] is False
        assert os.path.exists(hung.path)
    finally:
        os.kill(hung.pid, signal.SIGCONT)
    assert tmux_env.answers(hung)


def test_sweep_never_brings_a_killed_server_back(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    server = tmux_env.start("gone")
    tmux_env.tmux("-L", "gone", "kill-server", check=True)
    wait_for(lambda: not pid_alive(server.pid))
    before = tmux_server_pids(tmux_env)

    for args in (("sweep", "--dry-run"), ("sweep", "--json"), ("sweep",)):
        assert cli(*args).code == 0

    # The socket was stale and is gone now; no server was started for it, by anything.
    assert not os.path.lexists(server.path)
    assert tmux_server_pids(tmux_env) == before
    assert probe_path(server.path).state is SocketState.UNKNOWN  # nothing there at all


def test_dry_run_removes_nothing_and_says_so(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    stale = tmux_env.stale("crashed")
    result = cli("sweep", "--dry-run", "--json")
    assert result.code == 0
    entry = by_path(result.json())[stale]
    assert entry["state"] == "stale"
    assert entry["removed"] is False
    assert "would remove" in entry["reason"]
    assert entry["code"] == "would_remove"
    assert os.path.exists(stale)
    human = cli("sweep", "--dry-run")
    assert "1 would be removed" in human.out
    assert os.path.exists(stale)


def test_client_holding_the_lock_keeps_the_socket(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    """A tmux client that is starting a server holds `<socket>.lock`: the sweep must back off."""
    stale = tmux_env.stale("starting")
    with lock_held_elsewhere(stale + ".lock"):
        result = cli("sweep", "--json")
        assert result.code == 0
        entry = by_path(result.json())[stale]
        assert entry["state"] == "skipped"
        assert "lock held" in entry["reason"]
        assert entry["code"] == "lock_held"
        assert os.path.exists(stale)
        assert os.path.exists(stale + ".lock")  # never remove a lock someone holds
    # Once the client is gone, the next sweep cleans both.
    assert cli("sweep").code == 0
    assert not os.path.lexists(stale)
    assert not os.path.lexists(stale + ".lock")


def test_orphan_lock_files_do_not_pile_up(tmux_env: TmuxEnv, cli: Callable[..., CliResult]) -> None:
    orphan = os.path.join(tmux_env.sockdir, "dead.lock")
    with open(orphan, "w"):
        pass
    held = os.path.join(tmux_env.sockdir, "busy.lock")
    live = tmux_env.start("live")
    beside_live = live.path + ".lock"
    with open(beside_live, "w"):
        pass
    fd = os.open(held, os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = cli("sweep", "--json")
    finally:
        os.close(fd)
    assert result.code == 0
    assert result.json()["summary"]["locks_removed"] == 1
    assert not os.path.lexists(orphan)
    assert os.path.exists(held)  # held by someone: kept
    assert os.path.exists(beside_live)  # a socket is beside it: tmux's to remove
    assert tmux_env.answers(live)


def test_protected_socket_is_reported_not_removed(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    stale = tmux_env.stale("homebase")
    result = cli("sweep", "--json")
    assert result.code == 0
    entry = by_path(result.json())[stale]
    assert entry == {
        "path": stale,
        "state": "stale",
        "removed": False,
        "reason": "protected socket, kept",
        "code": "protected",
    }
    assert os.path.exists(stale)


def test_without_tmux_on_path_live_kept_stale_removed(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    live = tmux_env.start("live")
    stale = tmux_env.stale("crashed")
    env = dict(tmux_env.env, PATH="/nonexistent")
    result = cli("sweep", "--json", env=env)
    assert result.code == 0, result.err
    sockets = by_path(result.json())
    assert sockets[live.path]["state"] == "live"
    assert sockets[stale]["removed"] is True
    assert tmux_env.answers(live)


def test_default_directory_follows_tmux_tmpdir(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    """No --dir: the sweep looks where tmux puts sockets for this TMUX_TMPDIR."""
    stale = tmux_env.stale("x")
    result = cli("sweep", "--json")
    assert [d["path"] for d in result.json()["dirs"]] == [tmux_env.sockdir]
    assert not os.path.lexists(stale)


def test_human_summary_and_journal_priorities(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    first, second = tmux_env.fake_stale("a"), tmux_env.fake_stale("b")
    plain = cli("sweep")
    assert plain.code == 0
    assert plain.out.splitlines() == [plain.out.splitlines()[-1]]  # removals are not repeated
    assert "sweep: 0 live, 2 stale, 2 removed" in plain.out
    # One line per removal, each with its own prefix, path and reason.
    assert plain.err.splitlines() == [
        f"forge-tmux: removed stale tmux socket {path}: removed: no server listening "
        "(connection refused, re-checked under lock)"
        for path in (first, second)
    ]

    # With stderr connected to the journal, every line carries its priority (<5> = notice).
    tmux_env.stale("crashed2")
    tmux_env.fake_stale("crashed3")
    err_path = os.path.join(tmux_env.root, "stderr")
    with open(err_path, "w") as err:
        st = os.fstat(err.fileno())
        env = dict(tmux_env.env, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        proc = subprocess.run(
            [sys.executable, "-m", "forge_tmux", "sweep"],
            env=env,
            stderr=err,
            stdout=subprocess.DEVNULL,
            timeout=30,
        )
    assert proc.returncode == 0
    with open(err_path) as fh:
        lines = fh.read().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("<5>removed stale tmux socket") for line in lines)


def test_full_backlog_is_live_and_costs_no_timeout(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    """A listener whose backlog is full answers EAGAIN at once: live, kept, no waiting."""
    path = tmux_env.path("busy")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(path)
            fillers.append(filler)
        started = time.monotonic()
        result = cli("sweep", "--json", "--timeout", "5")
        elapsed = time.monotonic() - started
        entry = by_path(result.json())[path]
        assert entry["state"] == "live"
        assert entry["reason"] == "server listening, backlog full"
        assert os.path.exists(path)
        assert elapsed < 5  # the whole process, start-up included, well inside one timeout
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_server_between_bind_and_listen_is_kept(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    """connect() is refused by a server that has bound its socket but not listened yet, exactly
    as by a stale file. Without tmux's lock (a client that raced a lock file's removal, SIGUSR1)
    only the kernel tells them apart, and the sweep must ask it before unlinking."""
    path = tmux_env.path("starting")
    binder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    binder.bind(path)  # bound, not listening: connect() is refused
    try:
        result = cli("sweep", "--json")
        assert result.code == 0, result.err
        entry = by_path(result.json())[path]
        assert entry["state"] == "skipped"
        assert "a server is bound to it" in entry["reason"]
        assert os.path.exists(path)
        binder.listen(1)  # the "server" finishes starting and is reachable at its path
        assert probe_path(path).state is SocketState.LIVE
    finally:
        binder.close()
    # Once nothing is bound to the file, it is an ordinary stale socket.
    assert cli("sweep").code == 0
    assert not os.path.lexists(path)
