"""`ls`, `peek`, `kill`, `attach`, `save` and `post-boot --restore` against real tmux servers in a
private TMUX_TMPDIR, through the real entry point."""

from __future__ import annotations

import functools
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from forge_tmux import sessions
from forge_tmux_testing.cli import Cli
from forge_tmux_testing.processes import pid_alive, wait_for
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux

pytestmark = needs_tmux

LS_KEYS = {
    "name",
    "socket_name",
    "socket_path",
    "state",
    "windows",
    "attached",
    "created",
    "command",
    "spawned",
}


def spawn_in(env: TmuxEnv, name: str, *command: str, cwd: str = "/") -> None:
    """`forge-tmux spawn NAME -- COMMAND` run from `cwd` (the session's working directory)."""
    done = subprocess.run(
        [sys.executable, "-m", "forge_tmux", "spawn", name, "--", *command],
        env=env.env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def server_pid(env: TmuxEnv, label: str) -> int:
    shown = env.tmux("-L", label, "display-message", "-p", "#{pid}", check=True)
    return int(shown.stdout)


def dead(pid: int) -> bool:
    return not pid_alive(pid)


def snapshot_sessions(env: TmuxEnv) -> list[str]:
    path = os.path.join(env.env["FORGE_TMUX_STATE_DIR"], "sessions.json")
    with open(path, encoding="utf-8") as fh:
        return sorted(e["session"] for e in json.load(fh)["sessions"])


def fleet(env: TmuxEnv, workdir: str) -> None:
    """Three spawned sessions (one with a name that gets hashed) plus homebase."""
    spawn_in(env, "alpha", "sh", "-c", "echo hello-from-alpha; exec sleep 100000", cwd=workdir)
    spawn_in(env, "my agent", "sleep", "100000", cwd=workdir)
    spawn_in(env, "gamma", "sleep", "100000")
    env.start("homebase", session="home")


@pytest.fixture
def workdir(tmux_env: TmuxEnv) -> str:
    path = os.path.join(tmux_env.root, "work dir")
    os.mkdir(path)
    return path


def ls_json(cli: Cli) -> dict[str, Any]:
    result = cli("ls", "--json")
    assert result.code == 0, result.err
    assert result.out.count("\n") == 1
    data: dict[str, Any] = result.json()
    assert set(data) == {"sessions", "dead", "hung"}
    for item in data["sessions"]:
        assert set(item) == LS_KEYS
    return data


def test_ls_shows_the_three_spawned_sessions_and_homebase(
    tmux_env: TmuxEnv, cli: Cli, workdir: str
) -> None:
    fleet(tmux_env, workdir)
    data = ls_json(cli)
    found = {(s["name"], s["socket_name"], s["spawned"]) for s in data["sessions"]}
    hashed = sessions.spawn_target("my agent", tmux_env.sockdir).session
    assert found == {
        ("alpha", "spawn-alpha", True),
        (hashed, f"spawn-{hashed}", True),
        ("gamma", "spawn-gamma", True),
        ("home", "homebase", False),
    }
    assert all(s["state"] == "live" and s["windows"] == 1 for s in data["sessions"])
    human = cli("ls")
    assert human.code == 0 and len(human.out.splitlines()) == 4 and "homebase" in human.out


def test_ls_shows_a_dead_socket_and_never_starts_it(tmux_env: TmuxEnv, cli: Cli) -> None:
    stale = tmux_env.stale("spawn-old")
    before = os.stat(stale).st_ino
    data = ls_json(cli)
    assert data["dead"] == [stale] and data["sessions"] == []
    assert os.stat(stale).st_ino == before  # not replaced by a new server
    assert tmux_env.tmux("-L", "spawn-old", "list-sessions").returncode != 0


def test_ls_shows_hung_servers_after_one_shared_timeout(tmux_env: TmuxEnv, cli: Cli) -> None:
    servers = [tmux_env.start(f"hung{i}") for i in range(3)]
    tmux_env.start("fine")
    for server in servers:
        os.kill(server.pid, signal.SIGSTOP)
    try:
        config = os.path.join(tmux_env.root, "c.toml")
        with open(config, "w") as fh:
            fh.write("[health]\ntimeout = 1.5\n")
        started = time.monotonic()
        result = cli("--config", config, "ls", "--json")
        took = time.monotonic() - started
    finally:
        for server in servers:
            os.kill(server.pid, signal.SIGCONT)
    assert result.code == 0  # the listing was made; health --check is what fails on hung
    data = result.json()
    assert sorted(data["hung"]) == sorted(s.path for s in servers)
    assert [s["socket_name"] for s in data["sessions"]] == ["fine"]
    assert took < 1.5 * 2 + 3  # not 3 x 1.5 s waited one after another (and start-up)


def test_peek_shows_what_the_pane_printed(tmux_env: TmuxEnv, cli: Cli, workdir: str) -> None:
    fleet(tmux_env, workdir)
    wait_for(lambda: "hello-from-alpha" in cli("peek", "alpha").out)
    result = cli("peek", "alpha", "--lines", "1", "--json")
    assert result.code == 0
    assert result.json()["text"] == "hello-from-alpha"
    assert cli("peek", "alpha", "--lines", "0").code == 2


def test_kill_ends_one_and_leaves_the_others_and_homebase(
    tmux_env: TmuxEnv, cli: Cli, workdir: str
) -> None:
    fleet(tmux_env, workdir)
    others = {label: server_pid(tmux_env, label) for label in ("spawn-alpha", "homebase")}
    gamma = server_pid(tmux_env, "spawn-gamma")
    # A stale neighbour and its orphaned lock file are the timer's to judge, not kill's.
    neighbour = tmux_env.stale("spawn-old")
    Path(neighbour + ".lock").touch(mode=0o600)
    result = cli("kill", "gamma", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["server_exited"] is True and data["socket_removed"] is True
    wait_for(lambda: not pid_alive(gamma))
    assert not os.path.lexists(tmux_env.path("spawn-gamma"))  # tmux 3.3a leaves it: we did not
    assert os.path.exists(neighbour) and os.path.exists(neighbour + ".lock")
    for label, pid in others.items():
        assert pid_alive(pid) and server_pid(tmux_env, label) == pid
    names = {s["name"] for s in ls_json(cli)["sessions"]}
    assert "gamma" not in names and {"alpha", "home"} <= names


def test_kill_refuses_homebase_and_names_close_ones(
    tmux_env: TmuxEnv, cli: Cli, workdir: str
) -> None:
    fleet(tmux_env, workdir)
    home = server_pid(tmux_env, "homebase")
    refused = cli("kill", "home")
    assert refused.code == 1 and "protected" in refused.err
    assert pid_alive(home)
    missing = cli("kill", "alpah")
    assert missing.code == 1
    assert missing.err.count("\n") == 1 and "close names: alpha" in missing.err
    assert cli("peek", "gama").code == 1


def test_kill_one_of_two_sessions_keeps_the_server_and_its_socket(
    tmux_env: TmuxEnv, cli: Cli
) -> None:
    spawn_in(tmux_env, "duo", "sleep", "100000")
    tmux_env.tmux("-L", "spawn-duo", "new-session", "-d", "-s", "duo2", "sleep 100000", check=True)
    pid = server_pid(tmux_env, "spawn-duo")
    result = cli("kill", "duo", "--json")
    assert result.code == 0 and result.json()["server_exited"] is False
    assert pid_alive(pid) and os.path.exists(tmux_env.path("spawn-duo"))
    assert tmux_env.tmux("-L", "spawn-duo", "has-session", "-t", "=duo2").returncode == 0


@pytest.mark.parametrize(
    "hostile", ["$(touch {mark})", "`touch {mark}`", "x; touch {mark}", "-t =home", "=home"]
)
def test_hostile_names_execute_nothing(tmux_env: TmuxEnv, cli: Cli, hostile: str) -> None:
    tmux_env.start("homebase", session="home")
    mark = os.path.join(tmux_env.root, "pwned")
    name = hostile.format(mark=mark)
    for command in ("kill", "peek", "attach"):
        result = cli(command, name)
        assert result.code in (1, 2), (command, result.err)
        assert "Traceback" not in result.err
    assert not os.path.exists(mark)
    assert tmux_env.tmux("-L", "homebase", "has-session", "-t", "=home").returncode == 0


def test_attach_under_a_pty_shows_the_pane(tmux_env: TmuxEnv, workdir: str) -> None:
    spawn_in(tmux_env, "alpha", "sh", "-c", "echo hello-from-alpha; exec sleep 100000")
    env = {**tmux_env.env, "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real entry point on a terminal
        argv = [sys.executable, "-m", "forge_tmux", "attach", "alpha"]
        os.execve(sys.executable, argv, env)  # noqa: S606 - an argv, no shell
    seen = b""
    try:
        deadline = time.monotonic() + 15
        while b"hello-from-alpha" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
        assert b"hello-from-alpha" in seen
        shown = tmux_env.tmux("-L", "spawn-alpha", "list-clients", "-F", "#{client_pid}")
        assert shown.stdout.strip()  # a client is attached to that server
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


def test_attach_inside_tmux_opens_a_window_of_the_current_tmux(tmux_env: TmuxEnv, cli: Cli) -> None:
    spawn_in(tmux_env, "alpha", "sleep", "100000")
    outer = tmux_env.start("outer")
    env = {**tmux_env.env, "TMUX": f"{outer.path},{outer.pid},0"}
    result = cli("attach", "alpha", env=env)
    assert result.code == 0, result.err
    assert "new window" in result.out
    windows = tmux_env.tmux("-L", "outer", "list-windows", "-F", "#{window_name}").stdout.split()
    assert "alpha" in windows


def test_reboot_restores_spawned_sessions_but_not_one_killed_on_purpose(
    tmux_env: TmuxEnv, cli: Cli, workdir: str
) -> None:
    fleet(tmux_env, workdir)
    hashed = sessions.spawn_target("my agent", tmux_env.sockdir).session
    assert cli("save").code == 0
    assert cli("kill", "gamma").code == 0  # on purpose, after the save: leaves the snapshot
    assert snapshot_sessions(tmux_env) == sorted(["alpha", hashed])
    home = server_pid(tmux_env, "homebase")
    # The reboot: every server we started dies by SIGKILL and leaves its stale socket.
    for label in ("spawn-alpha", f"spawn-{hashed}"):
        pid = server_pid(tmux_env, label)
        os.kill(pid, signal.SIGKILL)
        wait_for(functools.partial(dead, pid))
        assert os.path.exists(tmux_env.path(label))
    result = cli("post-boot", "--restore", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert sorted(data["restored"]) == ["alpha", "my agent"]
    assert data["already_running"] == [] and data["failed"] == []
    for label, session in (("spawn-alpha", "alpha"), (f"spawn-{hashed}", hashed)):
        shown = tmux_env.tmux(
            "-L", label, "display-message", "-p", "-t", f"={session}:", "#{pane_current_path}"
        )
        assert shown.stdout.strip() == workdir
    started = tmux_env.tmux(
        "-L", "spawn-alpha", "display-message", "-p", "-t", "=alpha:", "#{pane_start_command}"
    ).stdout
    assert "echo hello-from-alpha; exec sleep 100000" in started
    assert not os.path.exists(tmux_env.path("spawn-gamma"))
    assert server_pid(tmux_env, "homebase") == home
    pids = {label: server_pid(tmux_env, label) for label in ("spawn-alpha", f"spawn-{hashed}")}
    again = cli("post-boot", "--restore", "--json").json()
    assert again["restored"] == [] and sorted(again["already_running"]) == ["alpha", "my agent"]
    assert {label: server_pid(tmux_env, label) for label in pids} == pids


def test_a_session_that_ends_leaves_the_snapshot_at_once(tmux_env: TmuxEnv, cli: Cli) -> None:
    go = os.path.join(tmux_env.root, "go")
    spawn_in(tmux_env, "brief", "sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.05; done', go)
    spawn_in(tmux_env, "stays", "sleep", "100000")
    spawn_in(tmux_env, "byhand", "sleep", "100000")
    assert cli("save").code == 0
    assert snapshot_sessions(tmux_env) == ["brief", "byhand", "stays"]
    open(go, "w").close()  # brief's command ends by itself, the last session of its server
    tmux_env.tmux("-L", "spawn-byhand", "kill-session", "-t", "=byhand", check=True)
    # The hook runs while the server still lives (exit-empty off), then ends the empty server.
    wait_for(lambda: snapshot_sessions(tmux_env) == ["stays"], timeout=15)
    wait_for(lambda: subprocess_gone(tmux_env, "spawn-brief"), timeout=10)


def subprocess_gone(env: TmuxEnv, label: str) -> bool:
    return env.tmux("-L", label, "list-sessions").returncode != 0


def test_a_crashed_server_stays_in_the_snapshot(tmux_env: TmuxEnv, cli: Cli) -> None:
    spawn_in(tmux_env, "crashy", "sleep", "100000")
    assert cli("save").code == 0
    pid = server_pid(tmux_env, "spawn-crashy")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid))
    assert cli("save").code == 0
    assert snapshot_sessions(tmux_env) == ["crashy"]


def test_without_tmux_each_command_says_so_in_one_line(tmux_env: TmuxEnv, cli: Cli) -> None:
    env = {**tmux_env.env, "PATH": os.path.join(tmux_env.root, "empty")}
    spawn_in(tmux_env, "alpha", "sleep", "100000")  # a live server to ask: tmux is needed
    for args in (("kill", "alpha"), ("peek", "alpha"), ("attach", "alpha"), ("kill", "x")):
        result = cli(*args, env=env)
        assert result.code == 1, (args, result.err)
        assert "Traceback" not in result.err and result.err.count("\n") == 1
    assert cli("ls", env=env).code == 0


def test_restore_reports_a_session_it_cannot_bring_back_and_exits_1(
    tmux_env: TmuxEnv, cli: Cli, workdir: str
) -> None:
    spawn_in(tmux_env, "nomad", "sleep", "100000", cwd=workdir)
    assert cli("save").code == 0
    pid = server_pid(tmux_env, "spawn-nomad")
    os.kill(pid, signal.SIGKILL)
    wait_for(functools.partial(dead, pid))
    os.rmdir(workdir)
    result = cli("post-boot", "--restore", "--json")
    assert result.code == 1
    data = result.json()
    assert data["restored"] == [] and data["already_running"] == []
    assert data["failed"] == [
        {"name": "nomad", "reason": f"working directory {workdir} does not exist"}
    ]
    assert snapshot_sessions(tmux_env) == ["nomad"]  # kept for a later try
