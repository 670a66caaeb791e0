"""`forge-tmux spawn` against real tmux servers in a private TMUX_TMPDIR."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from typing import Any

import pytest

from forge_tmux import spawn as core
from forge_tmux.probe import SocketState, probe_path
from forge_tmux_testing.cli import Cli
from forge_tmux_testing.processes import pid_alive, wait_for
from forge_tmux_testing.tmux_world import TMUX, TmuxEnv, fake_tmux_env, needs_tmux

pytestmark = needs_tmux

SLEEP = ["sleep", "100000"]
# For environments whose PATH holds only tmux.
SLEEP_ABS = [shutil.which("sleep") or "/bin/sleep", "100000"]


def spawn_json(cli: Cli, *args: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    result = cli("spawn", "--json", *args, **kwargs)
    assert result.out.count("\n") == 1, (result.out, result.err)
    data = result.json()
    assert set(data) == {
        "ok",
        "session",
        "socket_name",
        "socket_path",
        "cleaned",
        "attempts",
        "message",
        "error",
    }
    return result.code, data


def has_session(env: TmuxEnv, socket_name: str, session: str) -> bool:
    return env.tmux("-L", socket_name, "has-session", "-t", f"={session}").returncode == 0


def server_pid(env: TmuxEnv, socket_name: str) -> int:
    shown = env.tmux("-L", socket_name, "display-message", "-p", "#{pid}", check=True)
    return int(shown.stdout)


def sessions(env: TmuxEnv, socket_name: str) -> list[str]:
    listed = env.tmux("-L", socket_name, "list-sessions", "-F", "#{session_name}", check=True)
    return sorted(listed.stdout.split())


def read_count(path: str) -> int:
    with open(path) as fh:
        return int(fh.read())


# ---- creation, verification, cleaning ------------------------------------------------------


def test_spawn_creates_a_verified_session_on_its_own_socket(tmux_env: TmuxEnv, cli: Cli) -> None:
    code, data = spawn_json(cli, "build", "--", *SLEEP)
    assert code == 0, data
    assert data == {
        "ok": True,
        "session": "build",
        "socket_name": "spawn-build",
        "socket_path": tmux_env.path("spawn-build"),
        "cleaned": 0,
        "attempts": 1,
        "message": "spawned build on spawn-build",
        "error": None,
    }
    assert sessions(tmux_env, "spawn-build") == ["build"]
    # Never the shared default socket.
    assert not os.path.exists(tmux_env.path("default"))


def test_stale_socket_at_the_spawn_path_is_cleaned(tmux_env: TmuxEnv, cli: Cli) -> None:
    stale = tmux_env.stale("spawn-build")  # a real server killed with SIGKILL
    assert probe_path(stale).state is SocketState.STALE
    code, data = spawn_json(cli, "build", "--", *SLEEP)
    assert code == 0, data
    assert data["ok"] is True
    assert data["cleaned"] == 1
    assert data["attempts"] == 1
    assert data["message"] == "spawned build on spawn-build after cleaning 1 stale socket"
    assert has_session(tmux_env, "spawn-build", "build")


def test_human_output_says_how_many_sockets_were_cleaned(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.stale("spawn-build")
    tmux_env.fake_stale("other-crashed")
    result = cli("spawn", "build", "--", *SLEEP)
    assert result.code == 0, result.err
    assert result.out == "spawned build on spawn-build after cleaning 2 stale sockets\n"
    assert not os.path.exists(tmux_env.path("other-crashed"))


def test_already_running_is_refused_and_nothing_replaced(tmux_env: TmuxEnv, cli: Cli) -> None:
    assert cli("spawn", "build", "--", *SLEEP).code == 0
    pid = server_pid(tmux_env, "spawn-build")
    pane = tmux_env.tmux(
        "-L", "spawn-build", "display-message", "-p", "-t", "=build:", "#{pane_pid}"
    )
    code, data = spawn_json(cli, "build", "--", "sleep", "5")
    assert code == 1
    assert data["ok"] is False
    assert data["attempts"] == 0
    assert "already running" in data["error"]
    assert server_pid(tmux_env, "spawn-build") == pid
    again = tmux_env.tmux(
        "-L", "spawn-build", "display-message", "-p", "-t", "=build:", "#{pane_pid}"
    )
    assert again.stdout == pane.stdout
    human = cli("spawn", "build", "--", *SLEEP)
    assert human.code == 1
    assert human.err.strip().endswith("is already running; nothing was replaced")


def test_prefix_of_a_running_session_is_not_mistaken_for_it(tmux_env: TmuxEnv, cli: Cli) -> None:
    # tmux matches `-t build` against `build42`; the harness must target `=build` exactly.
    assert cli("spawn", "build42", "--socket-name", "shared", "--", *SLEEP).code == 0
    code, data = spawn_json(cli, "build", "--socket-name", "shared", "--", *SLEEP)
    assert code == 0, data
    assert sessions(tmux_env, "shared") == ["build", "build42"]


# ---- tmux's lying exit status ---------------------------------------------------------------


def test_lying_new_session_is_detected_cleaned_and_retried(tmux_env: TmuxEnv, cli: Cli) -> None:
    env, count = fake_tmux_env(tmux_env, "lie-once")
    code, data = spawn_json(cli, "build", "--", *SLEEP, env=env)
    assert code == 0, data
    assert data["ok"] is True
    assert data["attempts"] == 2
    assert data["message"] == "spawned build on spawn-build (attempt 2)"
    assert read_count(count) == 2
    assert has_session(tmux_env, "spawn-build", "build")


def test_poisoned_socket_after_a_lie_is_cleaned_by_the_retry_sweep(
    tmux_env: TmuxEnv, cli: Cli
) -> None:
    """The first attempt leaves a stale socket behind and lies (exit 0, nothing created): the
    harness must sweep again before its one retry, and say that it cleaned."""
    env, count = fake_tmux_env(tmux_env, "poison-once")
    code, data = spawn_json(cli, "build", "--", *SLEEP, env=env)
    assert code == 0, data
    assert data["attempts"] == 2
    assert data["cleaned"] == 1  # only the sweep between the attempts could have found it
    assert "after cleaning 1 stale socket" in data["message"]
    assert read_count(count) == 2
    assert has_session(tmux_env, "spawn-build", "build")


def test_always_lying_tmux_fails_after_exactly_two_attempts(tmux_env: TmuxEnv, cli: Cli) -> None:
    env, count = fake_tmux_env(tmux_env, "lie-always")
    started = time.monotonic()
    code, data = spawn_json(cli, "build", "--", *SLEEP, env=env)
    assert code == 1
    assert data["ok"] is False
    assert data["attempts"] == 2
    assert read_count(count) == 2
    assert re.fullmatch(
        r"attempt 1: error creating \S+spawn-build \(Address already in use\); "
        r"attempt 2: error creating \S+spawn-build \(Address already in use\)",
        data["error"],
    ), data["error"]
    assert data["message"] == "could not spawn build on spawn-build"
    assert time.monotonic() - started < 5
    human = cli("spawn", "build", "--", *SLEEP, env=env)
    assert human.code == 1
    assert "attempt 2: error creating" in human.err


# ---- servers dying around a spawn -----------------------------------------------------------


def test_server_killed_while_the_spawn_runs(tmux_env: TmuxEnv, cli: Cli) -> None:
    # A server with another session already owns the socket; during the spawn's new-session it
    # is SIGKILL-ed (by the fake tmux, for real), and the client reports what tmux reports then.
    doomed = tmux_env.start("spawn-build", session="other")
    env, count = fake_tmux_env(tmux_env, "kill-server-once")
    code, data = spawn_json(cli, "build", "--", *SLEEP, env=env)
    assert code == 0, data
    assert data["attempts"] == 2
    assert data["cleaned"] == 1  # the killed server's socket, by the sweep before the retry
    assert read_count(count) == 2
    assert not pid_alive(doomed.pid)
    assert sessions(tmux_env, "spawn-build") == ["build"]
    assert server_pid(tmux_env, "spawn-build") != doomed.pid


def test_server_killed_while_waiting_for_ready_fails_fast(tmux_env: TmuxEnv, cli: Cli) -> None:
    socket = tmux_env.path("spawn-build")

    def shows_booting() -> bool:
        pane = tmux_env.tmux("-L", "spawn-build", "capture-pane", "-p", "-t", "=build:")
        return "booting" in pane.stdout

    def kill_when_up() -> None:
        wait_for(lambda: probe_path(socket).state is SocketState.LIVE)
        wait_for(shows_booting)
        time.sleep(0.5)  # the harness polls at least every 0.2 s: it has seen the pane by now
        os.kill(server_pid(tmux_env, "spawn-build"), signal.SIGKILL)

    killer = threading.Thread(target=kill_when_up)
    killer.start()
    started = time.monotonic()
    code, data = spawn_json(
        cli, "build", "--wait-for", "NEVER", "--ready-timeout", "20", "--", "sh", "-c",
        "echo booting; sleep 100000",
    )  # fmt: skip
    killer.join()
    assert code == 1
    assert time.monotonic() - started < 10  # not the 20 s ready timeout
    assert data["error"].startswith("session ended before 'NEVER' appeared")
    assert "booting" in data["error"]


def test_hung_server_on_the_socket_fails_fast_and_is_left_alone(
    tmux_env: TmuxEnv, cli: Cli
) -> None:
    hung = tmux_env.start("spawn-build", session="other")
    os.kill(hung.pid, signal.SIGSTOP)
    config = os.path.join(tmux_env.root, "c.toml")
    with open(config, "w") as fh:
        fh.write("[health]\ntimeout = 0.5\n")
    started = time.monotonic()
    result = cli("--config", config, "spawn", "--json", "build", "--", *SLEEP)
    assert result.code == 1
    assert time.monotonic() - started < 4
    assert result.json()["error"] == (
        "the server on spawn-build does not answer within 0.5 s (hung?); see forge-tmux health"
    )
    assert result.json()["attempts"] == 0
    os.kill(hung.pid, signal.SIGCONT)
    assert sessions(tmux_env, "spawn-build") == ["other"]  # neither killed nor replaced


def test_kill_server_immediately_followed_by_spawn(
    tmux_env: TmuxEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill-server returns before the server stops accepting; the harness must not be fooled
    (no false "already running", no failure) however quickly the spawn follows."""
    monkeypatch.setenv("TMUX_TMPDIR", tmux_env.root)
    monkeypatch.setenv("FORGE_TMUX_STATE_DIR", tmux_env.env["FORGE_TMUX_STATE_DIR"])
    monkeypatch.delenv("TMUX", raising=False)
    path = tmux_env.path("spawn-race")
    for round_ in range(12):
        # Alternate: the dying server holds our very session, or only another one.
        held = "race" if round_ % 2 else "other"
        tmux_env.tmux("-L", "spawn-race", "new-session", "-d", "-s", held, *SLEEP, check=True)
        tmux_env.tmux("-L", "spawn-race", "kill-server", check=True)
        result = core.spawn(core.make_request("race", SLEEP))
        assert result.ok, (round_, result)
        assert has_session(tmux_env, "spawn-race", "race")
        assert not has_session(tmux_env, "spawn-race", "other")
        tmux_env.tmux("-L", "spawn-race", "kill-server", check=True)
        wait_for(lambda: probe_path(path).state is not SocketState.LIVE)


def test_kill_server_then_spawn_through_the_cli(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.start("spawn-build", session="build")
    tmux_env.tmux("-L", "spawn-build", "kill-server", check=True)
    code, data = spawn_json(cli, "build", "--", *SLEEP)
    assert code == 0, data
    assert has_session(tmux_env, "spawn-build", "build")


# ---- names and the command vector -----------------------------------------------------------

HOSTILE_NAMES = [
    "my build",
    "a.b",
    "x:y",
    "a/b",
    "..",
    "../../etc",
    "naïve-ünïcode-名前",
    "n" * 300,
    "$(touch {marker})",
    "`touch {marker}`",
    "x; touch {marker}",
    "x -L y",
    "=build",
]


@pytest.mark.parametrize("template", HOSTILE_NAMES)
def test_hostile_names_are_made_safe_and_nothing_executes(
    tmux_env: TmuxEnv, cli: Cli, template: str
) -> None:
    marker = os.path.join(tmux_env.root, "executed")
    name = template.format(marker=marker)
    code, data = spawn_json(cli, name, "--", *SLEEP)
    assert code == 0, data
    session = data["session"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", session)
    assert data["socket_name"] == "spawn-" + session
    assert data["socket_path"] == tmux_env.path("spawn-" + session)
    assert len(data["socket_path"].encode()) <= 107
    assert os.path.dirname(data["socket_path"]) == tmux_env.sockdir
    assert sessions(tmux_env, data["socket_name"]) == [session]
    assert not os.path.exists(marker)


def test_option_like_name_through_the_api(
    tmux_env: TmuxEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the command line `-L` would be an option (exit 2); the bot calls the API directly.
    monkeypatch.setenv("TMUX_TMPDIR", tmux_env.root)
    monkeypatch.setenv("FORGE_TMUX_STATE_DIR", tmux_env.env["FORGE_TMUX_STATE_DIR"])
    result = core.spawn(core.make_request("-L", SLEEP))
    assert result.ok, result
    assert (result.session, result.socket_name) == ("-L", "spawn--L")
    assert sessions(tmux_env, result.socket_name) == [result.session]


def test_empty_name_is_exit_2(cli: Cli) -> None:
    result = cli("spawn", "", "--", *SLEEP)
    assert result.code == 2
    assert result.out == ""
    assert result.err == "forge-tmux: error: the session name must not be empty\n"


def test_similar_names_get_different_sockets(tmux_env: TmuxEnv, cli: Cli) -> None:
    seen = {}
    for name in ("a.b", "a_b", "a-b", "a:b"):
        code, data = spawn_json(cli, name, "--", *SLEEP)
        assert code == 0, data
        seen[name] = data["socket_path"]
    assert len(set(seen.values())) == 4
    for path in seen.values():
        assert probe_path(path).state is SocketState.LIVE


def test_command_argv_arrives_unchanged(tmux_env: TmuxEnv, cli: Cli) -> None:
    out = os.path.join(tmux_env.root, "argv.json")
    script = (
        "import json, sys, time; json.dump(sys.argv[1:], open(sys.argv[1], 'w')); time.sleep(1e5)"
    )
    args = [out, "a; touch x", "two words", "$(id)", "'q'", '"dq"', "*", "", "--", "-L"]
    code, data = spawn_json(cli, "argv", "--", sys.executable, "-c", script, *args)
    assert code == 0, data
    wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 0)
    with open(out) as fh:
        assert json.load(fh) == args


def test_single_argument_command_is_a_program_not_shell_text(tmux_env: TmuxEnv, cli: Cli) -> None:
    # A program whose very name has a space and a `;`: as argv it runs; as shell text it would
    # be split (`.../my` does not exist) and the session would end at once.
    program = os.path.join(tmux_env.root, "my prog; echo x")
    ran = os.path.join(tmux_env.root, "ran")
    with open(program, "w") as fh:
        fh.write(f'#!/bin/sh\necho "$0" > {ran}\nexec sleep 100000\n')
    os.chmod(program, 0o755)
    code, data = spawn_json(cli, "one", "--", program)
    assert code == 0, data
    wait_for(lambda: os.path.exists(ran) and os.path.getsize(ran) > 0)
    with open(ran) as fh:
        assert fh.read() == program + "\n"


def test_session_that_ends_at_once_is_a_failure_without_retry(tmux_env: TmuxEnv, cli: Cli) -> None:
    env, count = fake_tmux_env(tmux_env, "vanish")
    code, data = spawn_json(cli, "gone", "--", *SLEEP, env=env)
    assert code == 1
    assert data["attempts"] == 1
    assert read_count(count) == 1
    assert data["error"] == (
        "attempt 1: session gone ended right after it was created "
        "(its command exited or could not be started)"
    )


def test_missing_command_fails_before_creating_anything(tmux_env: TmuxEnv, cli: Cli) -> None:
    code, data = spawn_json(cli, "gone", "--", "/nonexistent/program", "x")
    assert code == 1
    assert data["attempts"] == 0
    assert data["error"] == "command not found or not executable: /nonexistent/program"
    assert not os.path.exists(tmux_env.path("spawn-gone"))


# ---- protected sockets ----------------------------------------------------------------------


def test_homebase_keeps_its_server_and_sessions(tmux_env: TmuxEnv, cli: Cli) -> None:
    home = tmux_env.start("homebase", session="main")
    tmux_env.tmux("-L", "homebase", "new-session", "-d", "-s", "notes", *SLEEP, check=True)
    before = sessions(tmux_env, "homebase")
    tmux_env.stale("spawn-a")
    for name in ("a", "b", "homebase"):
        code, data = spawn_json(cli, name, "--", *SLEEP)
        assert code == 0, data
        assert data["socket_name"] != "homebase"
    assert cli("sweep", "--json").code == 0
    tmux_env.tmux("-L", "spawn-b", "kill-server", check=True)
    assert cli("spawn", "b", "--", *SLEEP).code == 0
    assert server_pid(tmux_env, "homebase") == home.pid
    assert sessions(tmux_env, "homebase") == before == ["main", "notes"]


def test_protected_socket_is_never_used(tmux_env: TmuxEnv, cli: Cli) -> None:
    result = cli("spawn", "x", "--socket-name", "homebase", "--", *SLEEP)
    assert result.code == 2
    assert result.err == (
        "forge-tmux: error: socket 'homebase' is protected (protected_sockets); "
        "spawn never uses it\n"
    )
    assert not os.path.exists(tmux_env.path("homebase"))
    default = cli("spawn", "x", "--socket-name", "default", "--", *SLEEP)
    assert default.code == 2
    assert "shared default socket" in default.err


def test_stale_protected_socket_is_not_swept_by_spawn(tmux_env: TmuxEnv, cli: Cli) -> None:
    stale_home = tmux_env.fake_stale("homebase")
    code, data = spawn_json(cli, "build", "--", *SLEEP)
    assert code == 0, data
    assert data["cleaned"] == 0
    assert os.path.exists(stale_home)


# ---- ready pattern --------------------------------------------------------------------------


def test_ready_pattern_found(tmux_env: TmuxEnv, cli: Cli) -> None:
    code, data = spawn_json(
        cli, "agent", "--wait-for", r"^READY \d+$", "--ready-timeout", "10", "--",
        "sh", "-c", "echo starting; sleep 0.3; echo READY 42; sleep 100000",
    )  # fmt: skip
    assert code == 0, data
    assert re.fullmatch(r"spawned agent on spawn-agent, ready after \d+\.\d s", data["message"])


def test_ready_pattern_never_appearing(tmux_env: TmuxEnv, cli: Cli) -> None:
    started = time.monotonic()
    code, data = spawn_json(
        cli, "agent", "--wait-for", "READY", "--ready-timeout", "1", "--",
        "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line $i; done; sleep 100000",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 4  # 1 s timeout plus start-up, not 30 s
    assert data["ok"] is False
    assert data["message"] == "spawned agent on spawn-agent, but it is not ready"
    head, tail = data["error"].split("; last lines of the pane:\n")
    assert head == (
        "ready pattern 'READY' did not appear within 1 s; the session is left running for "
        "inspection"
    )
    assert tail.splitlines() == [f"line {i}" for i in range(3, 13)]
    assert has_session(tmux_env, "spawn-agent", "agent")  # left for inspection


def test_ready_timeout_comes_from_the_config(tmux_env: TmuxEnv, cli: Cli) -> None:
    config = os.path.join(tmux_env.root, "c.toml")
    with open(config, "w") as fh:
        fh.write("[spawn]\nready_timeout = 0.5\n")
    started = time.monotonic()
    result = cli("--config", config, "spawn", "--json", "agent", "--wait-for", "X", "--", *SLEEP)
    data = result.json()
    assert result.code == 1
    assert time.monotonic() - started < 3
    assert "within 0.5 s" in data["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--wait-for", "("], "is not a valid regular expression"),
        (["x", "--ready-timeout", "0"], "--ready-timeout must be a positive number"),
        (["x", "--socket-name", "a/b"], "may contain only letters"),
        (["x", "--nope"], "No such option"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli: Cli, args: list[str], message: str) -> None:
    result = cli("spawn", *args)
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert message in result.err


# ---- the systemd scope door ------------------------------------------------------------------


def scope_env(tmux_env: TmuxEnv, systemd_run: str | None) -> dict[str, str]:
    """An environment that looks like a systemd service, with only tmux (and optionally a
    stand-in systemd-run) on PATH."""
    bindir = os.path.join(tmux_env.root, "sbin")
    os.makedirs(bindir)
    assert TMUX is not None
    os.symlink(TMUX, os.path.join(bindir, "tmux"))
    if systemd_run is not None:
        path = os.path.join(bindir, "systemd-run")
        with open(path, "w") as fh:
            fh.write(systemd_run)
        os.chmod(path, 0o755)
    runtime = os.path.join(tmux_env.root, "run")
    os.makedirs(runtime)
    with open(os.path.join(runtime, "bus"), "w"):
        pass  # a user bus "exists"
    return {
        **tmux_env.env,
        "PATH": bindir,
        "INVOCATION_ID": "0123456789abcdef",
        "XDG_RUNTIME_DIR": runtime,
    }


def test_under_systemd_the_server_is_started_through_a_scope(tmux_env: TmuxEnv, cli: Cli) -> None:
    record = os.path.join(tmux_env.root, "systemd-run.argv")
    recorder = (
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {record}\n'
        'while [ "$1" != "--" ]; do shift; done; shift\n'
        'exec "$@"\n'
    )
    code, data = spawn_json(cli, "svc", "--", *SLEEP_ABS, env=scope_env(tmux_env, recorder))
    assert code == 0, data
    with open(record) as fh:
        argv = fh.read().splitlines()
    assert argv[:4] == ["--user", "--scope", "--quiet", "--collect"]
    assert re.fullmatch(r"--unit=forge-tmux-spawn-svc-[0-9a-f]{6}", argv[4])
    tmux_on_path = os.path.join(tmux_env.root, "sbin", "tmux")
    assert argv[5:9] == [
        "--description=forge-tmux tmux server spawn-svc",
        "--property=Before=forge-tmux-save.service",  # the shutdown save runs first
        "--",
        tmux_on_path,
    ]
    assert argv[9:] == ["-L", "spawn-svc", *core.new_session_args("svc", SLEEP_ABS)]


def test_under_systemd_a_failing_scope_falls_back_once(tmux_env: TmuxEnv, cli: Cli) -> None:
    failing = "#!/bin/sh\necho 'Failed to connect to bus: No such file or directory' >&2\nexit 1\n"
    result = cli("spawn", "svc", "--", *SLEEP_ABS, env=scope_env(tmux_env, failing))
    assert result.code == 0, result.err
    assert result.out == "spawned svc on spawn-svc\n"
    assert result.err.count("cannot start a scope (Failed to connect to bus") == 1
    assert has_session(tmux_env, "spawn-svc", "svc")


def test_under_systemd_without_systemd_run_falls_back(tmux_env: TmuxEnv, cli: Cli) -> None:
    result = cli("spawn", "svc", "--", *SLEEP_ABS, env=scope_env(tmux_env, None))
    assert result.code == 0, result.err
    assert "cannot start a scope (systemd-run not found)" in result.err
    assert has_session(tmux_env, "spawn-svc", "svc")
