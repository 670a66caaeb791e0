"""Removing lock files without letting a tmux client lock a ghost (see forge_tmux/locks.py).

A tmux client opens `<socket>.lock`, then flocks it. If a sweep unlinked the lock file and released
it in that gap, the client's flock would succeed on an inode nobody else can reach, and two servers
could start on one path. The sweep must keep holding a retired lock until every process that still
has it open is waiting on it, so that the client wakes up, closes it and starts over by path.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from forge_tmux import probe
from forge_tmux import sweep as core
from forge_tmux.locks import parse_locks
from forge_tmux_testing.cli import CliResult
from forge_tmux_testing.hostguard import tmux_processes
from forge_tmux_testing.processes import as_user, needs_root, wait_for
from forge_tmux_testing.tmux_clients import MODEL_CLIENT, start_model_client
from forge_tmux_testing.tmux_world import (
    TmuxEnv,
    lock_held_elsewhere,
    make_stale_socket,
    needs_tmux,
)


def start_sweep(env: TmuxEnv, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "forge_tmux", "sweep", *args],
        env=env.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )


def test_client_between_open_and_flock_never_locks_a_ghost(tmux_env: TmuxEnv) -> None:
    sock = tmux_env.path("s")
    make_stale_socket(sock)
    client = start_model_client(sock + ".lock")
    sweeper = start_sweep(tmux_env, "--timeout", "10")
    try:
        # The sweep removes the socket and the lock file's name, then holds the lock ...
        wait_for(lambda: not os.path.lexists(sock) and not os.path.lexists(sock + ".lock"))
        time.sleep(0.2)
        assert sweeper.poll() is None, "released the lock while a client still had it open"
        # ... until the client, resuming, finds it held and waits on it.
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write("go\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "waited"
        _, err = sweeper.communicate(timeout=10)
    finally:
        client.kill()
        sweeper.kill()
    assert sweeper.returncode == 0, err
    assert "released" not in err  # no timeout was needed
    assert os.listdir(tmux_env.sockdir) == []


def test_a_client_that_never_locks_costs_one_timeout(tmux_env: TmuxEnv) -> None:
    sock = tmux_env.path("s")
    make_stale_socket(sock)
    client = start_model_client(sock + ".lock")
    try:
        started = time.monotonic()
        sweeper = start_sweep(tmux_env, "--timeout", "1")
        _, err = sweeper.communicate(timeout=20)
        elapsed = time.monotonic() - started
    finally:
        client.kill()
    assert sweeper.returncode == 0
    assert 1.0 <= elapsed < 6
    assert "released 1 retired lock file(s) while another process still held them open" in err
    assert not os.path.lexists(sock)


def test_dry_run_reports_a_held_lock_without_taking_it(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    sock = tmux_env.path("s")
    make_stale_socket(sock)
    with lock_held_elsewhere(sock + ".lock"):
        before = sorted(os.listdir(tmux_env.sockdir))
        result = cli("sweep", "--dry-run", "--json")
        assert result.code == 0
        (entry,) = result.json()["sockets"]
        assert entry["state"] == "skipped"
        assert entry["reason"].startswith("lock held")
        assert sorted(os.listdir(tmux_env.sockdir)) == before
        assert "0 would be removed" in cli("sweep", "--dry-run").out


def test_socket_named_like_a_lock_file_is_judged(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    """`tmux -L foo.lock` makes a socket called foo.lock: it is a socket, not a lock file."""
    stale = tmux_env.fake_stale("foo.lock")
    result = cli("sweep", "--json")
    assert result.code == 0
    assert [s["path"] for s in result.json()["sockets"] if s["removed"]] == [stale]


STRACE = shutil.which("strace")


@needs_tmux
@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
@pytest.mark.parametrize("alias", [None, "t"])
def test_real_tmux_paused_between_open_and_flock(tmux_env: TmuxEnv, alias: str | None) -> None:
    """The same race with real tmux clients: strace delays client X's flock() and unlink() so a
    sweep runs inside X's open-to-flock gap, and client Y starts meanwhile. Every session must
    end up on the one server that owns the socket. With an alias, X runs through a link named
    `t`: tmux renames itself `t: client` before it opens the lock file, and the sweep must still
    know it for a tmux client by that name."""
    assert STRACE is not None
    sock = tmux_env.path("s")
    make_stale_socket(sock)
    tmux = shutil.which("tmux")
    assert tmux is not None
    if alias is not None:
        os.symlink(tmux, os.path.join(tmux_env.root, alias))
        tmux = os.path.join(tmux_env.root, alias)
    x = subprocess.Popen(
        [
            STRACE,
            "-f",
            "-o",
            "/dev/null",
            "-e",
            "trace=flock,unlink",
            "-e",
            "inject=flock:delay_enter=800000",
            "-e",
            "inject=unlink:delay_enter=1500000",
            tmux,
            "-f",
            "/dev/null",
            "-L",
            "s",
            "new-session",
            "-d",
            "-s",
            "X",
            "sleep 1000",
        ],
        env=tmux_env.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)  # X has opened the lock file and sits in its delayed flock()
        swept_at = time.monotonic()
        sweeper = start_sweep(tmux_env, "--timeout", "10")
        time.sleep(0.7)
        y = tmux_env.tmux("-L", "s", "new-session", "-d", "-s", "Y", "sleep 1000", timeout=30)
        assert sweeper.wait(timeout=30) == 0
        # The window was really hit: the sweep held the retired lock until X waited on it
        # (X's flock calls are delayed 0.8 s each); a sweep that releases at once takes ~0.1 s.
        assert time.monotonic() - swept_at >= 0.8
        wait_for(lambda: tmux_env.tmux("-L", "s", "has-session", "-t", "=X").returncode == 0, 20)
        time.sleep(1)  # let X's server finish whatever it was doing
        sessions = tmux_env.tmux("-L", "s", "list-sessions", "-F", "#{session_name}")
        servers = [pid for pid, comm, _ in tmux_processes(tmux_env.root) if comm == "tmux: server"]
        assert y.returncode == 0, y.stderr
        assert sorted(sessions.stdout.split()) == ["X", "Y"], (sessions, servers)
        assert len(servers) == 1, servers
    finally:
        for pid, _, _ in tmux_processes(tmux_env.root):
            os.kill(pid, signal.SIGKILL)
        x.kill()
        x.wait()


def test_parse_proc_locks() -> None:
    text = (
        "1: FLOCK  ADVISORY  WRITE 7864 fe:00:2146372 0 EOF\n"
        "1: -> FLOCK  ADVISORY  WRITE 7913 fe:00:2146372 0 EOF\n"
        "2: POSIX  ADVISORY  WRITE 555 00:1a:99 0 EOF\n"
        "3: FLOCK  ADVISORY  WRITE 12 103:05:77 0 EOF\n"
        "garbage\n"
    )
    held, waiting = parse_locks(text)
    assert held == {(os.makedev(0xFE, 0), 2146372), (os.makedev(0x103, 5), 77)}
    assert waiting == {(7913, (os.makedev(0xFE, 0), 2146372))}


@needs_root
def test_a_client_it_cannot_inspect_makes_it_hold_the_whole_timeout(tmux_env: TmuxEnv) -> None:
    """A client of the same uid but another gid: its fd links are unreadable (the kernel's
    ptrace check), so the sweep cannot tell whether it is in the open-to-flock gap and must hold
    the retired lock for the whole --timeout rather than release at once."""
    nobody, other_gid = 65534, 65533
    sockdir = os.path.join(tmux_env.root, f"tmux-{nobody}")
    os.mkdir(sockdir, 0o700)
    sock = os.path.join(sockdir, "s")
    make_stale_socket(sock)
    os.chown(sock, nobody, nobody)
    os.chown(sockdir, nobody, nobody)
    # Named "tmux" like a real client (the kernel names a process after its executable's file).
    as_tmux = os.path.join(tmux_env.root, "tmux")
    os.symlink("/usr/bin/python3", as_tmux)
    client = subprocess.Popen(
        [
            shutil.which("setpriv") or "setpriv",
            f"--reuid={nobody}",
            f"--regid={other_gid}",
            "--clear-groups",
            as_tmux,
            "-c",
            MODEL_CLIENT,
            sock + ".lock",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "opened"

        def sweep_as_nobody() -> dict[str, float]:
            started = time.monotonic()
            result = core.sweep([sockdir], timeout=1.5)
            return {"elapsed": time.monotonic() - started, "removed": result.removed}

        outcome = as_user(nobody, sweep_as_nobody)
    finally:
        client.kill()
        client.wait()
    assert outcome["removed"] == 1, outcome
    assert outcome["elapsed"] >= 1.4, outcome


def test_a_client_on_a_lock_file_the_sweep_created_is_waited_for(
    tmux_env: TmuxEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep links one locked file of its batch under every missing `<socket>.lock`. A
    client that opens one of those names (here: just before the kernel's last check) and is in
    its open-to-flock gap when the names are retired must still be waited for, and must end up
    waiting, never on a ghost."""
    import threading  # noqa: PLC0415

    for name in ("s1", "s2", "s3"):
        make_stale_socket(tmux_env.path(name))
    clients: list[subprocess.Popen[str]] = []
    real_bound_files = probe.bound_files

    def kernel_while_a_client_opens() -> frozenset[tuple[int, int]] | None:
        lock = tmux_env.path("s2.lock")
        assert os.stat(lock).st_ino == os.stat(tmux_env.path("s1.lock")).st_ino  # one file
        client = start_model_client(lock)
        clients.append(client)

        def resume_later() -> None:
            time.sleep(0.5)
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()

        threading.Thread(target=resume_later, daemon=True).start()
        return real_bound_files()

    monkeypatch.setattr(core, "bound_files", kernel_while_a_client_opens)
    try:
        started = time.monotonic()
        result = core.sweep([tmux_env.sockdir], timeout=10)
        elapsed = time.monotonic() - started
        (client,) = clients
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "waited"
    finally:
        for client in clients:
            client.kill()
            client.wait()
    assert result.removed == 3
    assert result.lock_waits_timed_out == 0
    assert 0.4 <= elapsed < 9  # held until the client waited, not until the timeout
    assert any(f"pid {clients[0].pid}:" in line for line in result.lock_waits)
    assert os.listdir(tmux_env.sockdir) == []
