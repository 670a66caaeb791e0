"""`forge-tmux health` against real tmux servers: live, stale (SIGKILL), hung (SIGSTOP and a
listener that never answers), every format, --check, --output, and that it never starts a server."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forge_tmux_testing.cli import Cli, CliResult
from forge_tmux_testing.processes import needs_root, pid_alive, wait_for
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux, tmux_server_pids

pytestmark = needs_tmux


@pytest.fixture
def listeners() -> Iterator[Callable[[str, bool], None]]:
    """Unix listeners that are not tmux: `silent` never accepts (a hung server to tmux), the
    other accepts and hangs up at once (tmux: `server exited unexpectedly`, an unknown)."""
    opened: list[socket.socket] = []
    stop = threading.Event()

    def make(path: str, silent: bool) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(64)
        opened.append(sock)
        if not silent:
            sock.settimeout(0.05)

            def hang_up() -> None:
                while not stop.is_set():
                    with contextlib.suppress(OSError):
                        conn, _ = sock.accept()
                        conn.close()

            threading.Thread(target=hang_up, daemon=True).start()

    yield make
    stop.set()
    time.sleep(0.1)
    for sock in opened:
        sock.close()


def hung_server(tmux_env: TmuxEnv, name: str) -> int:
    server = tmux_env.start(name)
    os.kill(server.pid, signal.SIGSTOP)  # the fixture's finalizer sends SIGCONT, then SIGKILL
    return server.pid


def counts(result: CliResult) -> tuple[int, int, int, int]:
    data = result.json()
    return data["live"], data["dead"], data["hung"], data["unknown"]


def test_counts_and_sessions_against_real_servers(tmux_env: TmuxEnv, cli: Cli) -> None:
    one = tmux_env.start("one")
    two = tmux_env.start("two")
    tmux_env.tmux("-L", "two", "new-session", "-d", "-s", "second", "sleep 100000", check=True)
    stale = tmux_env.stale("killed")
    tmux_env.fake_stale("bound")
    stopped = hung_server(tmux_env, "stopped")

    result = cli("health", "--format", "json")

    assert result.code == 0, result.err
    assert counts(result) == (2, 2, 1, 0)
    by_path = {s["path"]: s for s in result.json()["sockets"]}
    assert by_path[one.path]["sessions"] == 1
    assert by_path[two.path]["sessions"] == 2
    assert by_path[two.path]["pid"] == two.pid
    assert by_path[stale]["state"] == "dead"
    assert by_path[stale]["sessions"] is None
    assert by_path[tmux_env.path("stopped")]["state"] == "hung"
    assert by_path[tmux_env.path("stopped")]["pid"] == stopped
    assert set(result.json()) >= {"live", "dead", "hung", "unknown", "sockets"}
    assert all(set(s) >= {"path", "state", "sessions"} for s in result.json()["sockets"])

    row = cli("health")
    assert row.code == 0
    assert row.out == "tmux sockets: 2 live, 2 dead, 1 hung, 0 unknown\n"
    assert cli("health", "--json").json()["live"] == 2


def test_unknown_when_a_listener_is_not_a_tmux_server(
    tmux_env: TmuxEnv, cli: Cli, listeners: Callable[[str, bool], None]
) -> None:
    listeners(tmux_env.path("rude"), False)
    result = cli("health", "--json")
    assert counts(result) == (0, 0, 0, 1)
    assert "server exited unexpectedly" in result.json()["sockets"][0]["reason"]


def test_many_hung_servers_cost_about_one_timeout(
    tmux_env: TmuxEnv, cli: Cli, listeners: Callable[[str, bool], None]
) -> None:
    for i in range(5):
        listeners(tmux_env.path(f"silent{i}"), True)
    hung_server(tmux_env, "stopped")
    tmux_env.start("fine")

    started = time.monotonic()
    result = cli("health", "--json", "--timeout", "1")
    elapsed = time.monotonic() - started

    assert counts(result) == (1, 0, 6, 0)
    assert elapsed < 3.5, f"6 hung servers took {elapsed:.1f} s with a 1 s timeout"
    silent = [s for s in result.json()["sockets"] if "silent" in s["path"]]
    assert all("within 1 s" in s["reason"] for s in silent)


def test_prometheus_output_parses(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.start("one")
    tmux_env.tmux("-L", "one", "new-session", "-d", "-s", "b", "sleep 100000", check=True)
    tmux_env.stale("gone")
    hung_server(tmux_env, "stopped")

    result = cli("health", "--format", "prometheus")

    assert result.code == 0, result.err
    families = {f.name: f for f in text_string_to_metric_families(result.out)}
    by_state = {s.labels["state"]: s.value for s in families["forge_tmux_sockets"].samples}
    assert by_state == {"live": 1, "dead": 1, "hung": 1, "unknown": 0}
    assert families["forge_tmux_sockets"].type == "gauge"
    assert families["forge_tmux_sessions"].samples[0].value == 2
    assert families["forge_tmux_orphaned_servers"].samples[0].value == 0
    assert families["forge_tmux_health_complete"].samples[0].value == 1
    assert abs(families["forge_tmux_health_timestamp_seconds"].samples[0].value - time.time()) < 60


@pytest.mark.parametrize(
    ("setup", "code", "word"),
    [
        ("empty", 0, "OK"),
        ("live", 0, "OK"),
        ("dead", 1, "WARNING"),
        ("orphan", 1, "WARNING"),
        ("hung", 2, "CRITICAL"),
        ("dead+hung", 2, "CRITICAL"),
        ("unknown", 3, "UNKNOWN"),
    ],
)
def test_nagios_exit_codes(
    tmux_env: TmuxEnv,
    cli: Cli,
    listeners: Callable[[str, bool], None],
    setup: str,
    code: int,
    word: str,
) -> None:
    if setup != "empty":
        tmux_env.start("fine")
    if "dead" in setup:
        tmux_env.stale("gone")
    if "hung" in setup:
        hung_server(tmux_env, "stopped")
    if setup == "unknown":
        listeners(tmux_env.path("rude"), False)
    if setup == "orphan":
        os.unlink(tmux_env.start("orphan").path)

    result = cli("health", "--format", "nagios", "--timeout", "1")

    assert result.code == code, result.out + result.err
    assert result.out.startswith(f"TMUX {word} - tmux sockets: ")
    first, *more = result.out.splitlines()
    assert len(more) == {"empty": 0, "live": 0, "dead+hung": 2}.get(setup, 1)  # one per problem
    perf = dict(item.split("=", 1) for item in first.split("|", 1)[1].split())
    assert set(perf) >= {"live", "dead", "hung", "unknown", "orphaned", "sessions"}


def test_check_exits_1_on_dead_or_hung_only(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.start("fine")
    assert cli("health", "--check").code == 0
    tmux_env.stale("gone")
    assert cli("health").code == 0  # without --check a report is a success
    checked = cli("health", "--check", "--json")
    assert checked.code == 1
    assert checked.json()["dead"] == 1
    assert cli("health", "--check", "--format", "prometheus").code == 1


def test_check_exits_1_on_hung(tmux_env: TmuxEnv, cli: Cli) -> None:
    hung_server(tmux_env, "stopped")
    assert cli("health", "--check").code == 1


def test_output_is_written_atomically(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.start("fine")
    textfile_dir = os.path.join(tmux_env.root, "textfile")
    os.mkdir(textfile_dir)
    target = os.path.join(textfile_dir, "forge_tmux.prom")
    with open(target, "w") as fh:
        fh.write("old\n")
    before = os.stat(target).st_ino

    result = cli("health", "--format", "prometheus", "--output", target)

    assert result.code == 0, result.err
    assert result.out == ""
    assert os.listdir(textfile_dir) == ["forge_tmux.prom"]  # no temp file left behind
    assert os.stat(target).st_ino != before  # replaced by rename, not rewritten in place
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    with open(target) as fh:
        families = {f.name for f in text_string_to_metric_families(fh.read())}
    assert "forge_tmux_sockets" in families

    row = cli("health", "--output", os.path.join(textfile_dir, "row.txt"))
    assert row.code == 0
    with open(os.path.join(textfile_dir, "row.txt")) as fh:
        assert fh.read() == "tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown\n"


def test_bad_input_is_one_line_and_exit_2(tmux_env: TmuxEnv, cli: Cli) -> None:
    for args in (
        ("--format", "xml"),
        ("--timeout", "0"),
        ("--output", os.path.join(tmux_env.root, "no", "such", "dir", "f.prom")),
    ):
        result = cli("health", *args)
        assert result.code == 2, args
        assert result.err.count("\n") == 1, result.err
        assert "Traceback" not in result.err


def _refused(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        return sock.connect_ex(path) == errno.ECONNREFUSED
    finally:
        sock.close()


def test_no_format_ever_starts_a_server(tmux_env: TmuxEnv, cli: Cli) -> None:
    server = tmux_env.start("killed")
    tmux_env.tmux("-L", "killed", "kill-server")
    wait_for(lambda: _refused(server.path) and not pid_alive(server.pid))

    for fmt in ("row", "json", "prometheus", "nagios"):
        cli("health", "--format", fmt)
        cli("health", "--format", fmt, "--all-users", "--check")
    cli("health", "--output", os.path.join(tmux_env.root, "out.prom"), "--format", "prometheus")
    cli("recover", "--dry-run")

    assert _refused(server.path)
    assert {pid for pid in tmux_server_pids(tmux_env) if pid_alive(pid)} == set()
    assert os.path.exists(server.path)  # and nothing was removed either


def test_orphaned_server_is_listed(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.start("fine")
    orphan = tmux_env.start("orphan")
    os.unlink(orphan.path)

    result = cli("health", "--json")

    assert result.json()["orphaned"] == 1
    assert result.json()["orphans"][0]["pid"] == orphan.pid
    assert result.json()["orphans"][0]["path"] == orphan.path
    assert "deleted" in result.json()["orphans"][0]["reason"]
    assert cli("health").out == "tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown, 1 orphaned\n"


def test_other_directories_orphans_are_not_ours_to_report(tmux_env: TmuxEnv, cli: Cli) -> None:
    orphan = tmux_env.start("orphan")
    os.unlink(orphan.path)
    elsewhere = os.path.join(tmux_env.root, "elsewhere")
    os.mkdir(elsewhere, 0o700)
    assert cli("health", "--json", "--dir", elsewhere).json()["orphaned"] == 0


@needs_root
def test_all_users_inspects_other_users_directories_read_only(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.start("fine")
    other = os.path.join(tmux_env.root, "tmux-65534")
    os.mkdir(other, 0o700)
    stale = tmux_env.fake_stale("theirs", other)
    os.chown(stale, 65534, 65534)
    os.chown(other, 65534, 65534)

    mine = cli("health", "--json").json()
    everyone = cli("health", "--json", "--all-users").json()

    assert (mine["live"], mine["dead"]) == (1, 0)
    assert (everyone["live"], everyone["dead"]) == (1, 1)
    theirs = next(s for s in everyone["sockets"] if s["path"] == stale)
    assert theirs["uid"] == 65534
    assert next(d for d in everyone["dirs"] if d["path"] == other)["status"] == "read-only"
    assert os.path.exists(stale)


@needs_tmux
def test_events_report_a_gone_server_once(tmux_env: TmuxEnv, cli: Callable[..., CliResult]) -> None:
    """`--events` remembers runs (its own memory, not the notifier's) and reports a server that
    was live and is now dead exactly once."""
    server = tmux_env.start("build")
    first = cli("health", "--events")
    assert first.code == 0, first.err
    assert first.out.splitlines() == ["tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown"]

    os.kill(server.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(server.pid))
    second = cli("health", "--events")
    lines = second.out.splitlines()
    assert lines[0] == "tmux sockets: 0 live, 1 dead, 0 hung, 0 unknown"
    assert len(lines) == 2
    assert lines[1].startswith(f"tmux server gone: {server.path} (pid {server.pid}")

    third = cli("health", "--events", "--json")
    assert third.json()["events"] == []  # told once
    assert third.json()["dead"] == 1
    state = tmux_env.env["FORGE_TMUX_STATE_DIR"]
    assert sorted(os.listdir(state)) == ["health-health.json", "health-health.json.lock"]
    # Without --events nothing is remembered or reported, as before.
    assert cli("health").out.splitlines() == ["tmux sockets: 0 live, 1 dead, 0 hung, 0 unknown"]
    refused = cli("health", "--events", "--format", "prometheus")
    assert refused.code == 2
    assert "--events goes with --format row or json" in refused.err
