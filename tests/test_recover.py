"""`forge-tmux recover`: an orphaned server (socket unlinked) gets its socket back with SIGUSR1,
sessions intact; SIGUSR1 is refused when another server owns the path now."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable

import pytest
from conftest import CliResult, Server, TmuxEnv, needs_root, needs_tmux, pid_alive

pytestmark = needs_tmux

Cli = Callable[..., CliResult]


def pid_on(tmux_env: TmuxEnv, name: str) -> int:
    return int(tmux_env.tmux("-L", name, "display-message", "-p", "#{pid}", check=True).stdout)


def orphan(tmux_env: TmuxEnv, name: str) -> Server:
    server = tmux_env.start(name)
    tmux_env.tmux("-L", name, "new-session", "-d", "-s", "second", "sleep 100000", check=True)
    os.unlink(server.path)
    assert tmux_env.tmux("-L", name, "list-sessions").returncode == 1
    return server


def sessions(tmux_env: TmuxEnv, name: str) -> list[str]:
    out = tmux_env.tmux("-L", name, "list-sessions", "-F", "#{session_name}", check=True).stdout
    return sorted(out.split())


def test_orphan_is_found_and_recovered_with_sessions_intact(tmux_env: TmuxEnv, cli: Cli) -> None:
    server = orphan(tmux_env, "lost")

    dry = cli("recover", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert [(o["pid"], o["action"]) for o in dry.json()["orphans"]] == [
        (server.pid, "would-recover")
    ]
    assert not os.path.exists(server.path)  # a dry run sends nothing

    result = cli("recover", "--json")

    assert result.code == 0, result.err
    assert result.json()["ok"] is True
    assert [(o["pid"], o["path"], o["action"]) for o in result.json()["orphans"]] == [
        (server.pid, server.path, "recovered")
    ]
    assert stat.S_ISSOCK(os.lstat(server.path).st_mode)
    assert sessions(tmux_env, "lost") == ["main", "second"]
    assert pid_on(tmux_env, "lost") == server.pid
    assert "recovered the socket" in result.err  # logged on stderr

    again = cli("recover")
    assert again.code == 0
    assert "0 orphaned server(s)" in again.out
    assert cli("health", "--json").json()["orphaned"] == 0


def test_refused_when_another_live_server_owns_the_path(tmux_env: TmuxEnv, cli: Cli) -> None:
    first = orphan(tmux_env, "shared")
    second = tmux_env.start("shared")  # tmux finds no socket and starts a second server there
    assert second.pid != first.pid
    inode = os.lstat(second.path).st_ino

    result = cli("recover", "--json")

    assert result.code == 1
    [entry] = result.json()["orphans"]
    assert (entry["pid"], entry["action"]) == (first.pid, "refused")
    assert f"another server now listens on this path (pid {second.pid})" in entry["reason"]
    assert os.lstat(second.path).st_ino == inode  # the second server keeps its socket
    assert pid_on(tmux_env, "shared") == second.pid
    assert pid_alive(first.pid)
    human = cli("recover")
    assert human.code == 1
    assert "refused" in human.out


def test_two_orphans_of_one_path_need_a_choice(tmux_env: TmuxEnv, cli: Cli) -> None:
    first = orphan(tmux_env, "twice")
    second = tmux_env.start("twice")
    os.unlink(second.path)

    refused = cli("recover", "--json")
    assert refused.code == 1
    assert {o["action"] for o in refused.json()["orphans"]} == {"refused"}
    assert "choose one with --pid" in refused.json()["orphans"][0]["reason"]
    assert not os.path.exists(first.path)

    chosen = cli("recover", "--json", "--pid", str(first.pid))
    assert chosen.code == 0, chosen.out
    assert pid_on(tmux_env, "twice") == first.pid
    assert sessions(tmux_env, "twice") == ["main", "second"]


def test_deleted_socket_directory_is_recreated(tmux_env: TmuxEnv, cli: Cli) -> None:
    server = tmux_env.start("homeless")
    shutil.rmtree(tmux_env.sockdir)

    assert cli("health", "--json").json()["orphaned"] == 1
    result = cli("recover", "--json")

    assert result.code == 0, result.out + result.err
    assert stat.S_IMODE(os.stat(tmux_env.sockdir).st_mode) == 0o700
    assert pid_on(tmux_env, "homeless") == server.pid


def test_stopped_orphan_is_refused(tmux_env: TmuxEnv, cli: Cli) -> None:
    server = orphan(tmux_env, "frozen")
    os.kill(server.pid, signal.SIGSTOP)  # the fixture's finalizer continues and kills it

    result = cli("recover", "--json")

    assert result.code == 1
    assert "stopped" in result.json()["orphans"][0]["reason"]
    assert not os.path.exists(server.path)


def test_a_stale_file_at_the_path_is_replaced(tmux_env: TmuxEnv, cli: Cli) -> None:
    server = orphan(tmux_env, "over")
    tmux_env.fake_stale("over")  # a dead socket file now sits at the path

    result = cli("recover", "--json")

    assert result.code == 0, result.out
    assert pid_on(tmux_env, "over") == server.pid


def test_a_regular_file_at_the_path_is_never_replaced(tmux_env: TmuxEnv, cli: Cli) -> None:
    server = orphan(tmux_env, "notes")
    with open(server.path, "w") as fh:
        fh.write("someone's file\n")

    result = cli("recover", "--json")

    assert result.code == 1
    assert "not a socket" in result.json()["orphans"][0]["reason"]
    with open(server.path) as fh:
        assert fh.read() == "someone's file\n"


def test_nothing_to_recover(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.start("fine")
    result = cli("recover", "--json")
    assert result.code == 0
    assert result.json() == {"ok": True, "dry_run": False, "orphans": []}


def test_without_ss_nothing_is_signalled(tmux_env: TmuxEnv, cli: Cli) -> None:
    server = orphan(tmux_env, "unproven")
    bin_dir = os.path.join(tmux_env.root, "bin")
    os.mkdir(bin_dir)
    tmux = shutil.which("tmux")
    assert tmux is not None
    os.symlink(tmux, os.path.join(bin_dir, "tmux"))  # tmux, but no ss on PATH
    env = {**tmux_env.env, "PATH": bin_dir}

    result = cli("recover", "--json", env=env)
    assert result.code == 1
    assert result.json()["ok"] is False
    assert "ss" in result.json()["error"]
    assert not os.path.exists(server.path)

    nagios = cli("health", "--format", "nagios", env=env)
    assert nagios.code == 3, nagios.out  # the orphan check could not run: UNKNOWN
    assert "ss (iproute2) not found" in cli("health", "--json", env=env).json()["orphan_error"]


@needs_root
def test_root_refuses_another_users_orphan(tmux_env: TmuxEnv, cli: Cli) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    theirs = os.path.join(tmux_env.root, "tmux-65534")
    os.mkdir(theirs, 0o700)
    os.chown(theirs, 65534, 65534)
    as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    env = {**tmux_env.env, "HOME": "/"}
    start = [*as_nobody, "tmux", "-f", "/dev/null", "-L", "x", "new-session", "-d", "-P", "-F"]
    started = subprocess.run(
        [*start, "#{pid}", "sleep 100000"], env=env, capture_output=True, text=True, timeout=10
    )
    pid = int(started.stdout)
    tmux_env.pids.append(pid)
    os.unlink(os.path.join(theirs, "x"))

    assert cli("health", "--json", "--all-users").json()["orphaned"] == 1
    result = cli("recover", "--json", "--dir", theirs)

    assert result.code == 1
    [entry] = result.json()["orphans"]
    assert (entry["pid"], entry["action"]) == (pid, "refused")
    assert "uid 65534" in entry["reason"]
    assert not os.path.exists(os.path.join(theirs, "x"))
