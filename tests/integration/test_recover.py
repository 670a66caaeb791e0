"""`forge-tmux recover`: an orphaned server (socket unlinked) gets its socket back with SIGUSR1,
sessions intact; SIGUSR1 is refused when another server owns the path now."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import stat
import subprocess

import pytest

from forge_tmux_testing.cli import Cli
from forge_tmux_testing.no_netlink import run_without_netlink
from forge_tmux_testing.processes import needs_root, pid_alive
from forge_tmux_testing.tmux_world import Server, TmuxEnv, needs_tmux

pytestmark = needs_tmux


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
    # The lock file taken for the recovery is retired, as tmux's server does when it starts.
    assert sorted(os.listdir(tmux_env.sockdir)) == ["lost"]

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


def test_refused_when_a_socket_is_bound_at_the_path_but_not_listening(
    tmux_env: TmuxEnv, cli: Cli
) -> None:
    """A server between its bind() and its listen() is refused by connect() like a stale file;
    the kernel knows it is bound. SIGUSR1 would make tmux unlink it under that server."""
    server = orphan(tmux_env, "starting")
    newcomer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        newcomer.bind(server.path)  # bound, not yet listening
        inode = os.lstat(server.path).st_ino

        result = cli("recover", "--json")

        assert result.code == 1, result.out
        [entry] = result.json()["orphans"]
        assert (entry["pid"], entry["action"]) == (server.pid, "refused")
        assert "a socket is bound to this path" in entry["reason"]
        assert os.lstat(server.path).st_ino == inode  # the newcomer keeps its file
        assert pid_alive(server.pid)
    finally:
        newcomer.close()


def test_a_held_lock_is_left_alone(tmux_env: TmuxEnv, cli: Cli) -> None:
    """A tmux client holding the lock is starting a server there: refused, its lock untouched."""
    server = orphan(tmux_env, "busy")
    lock_path = server.path + ".lock"
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        inode = os.fstat(fd).st_ino

        result = cli("recover", "--json")

        assert result.code == 1
        assert "starting a server on this path" in result.json()["orphans"][0]["reason"]
        assert os.lstat(lock_path).st_ino == inode
        assert not os.path.exists(server.path)
    finally:
        os.close(fd)


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


def test_without_netlink_nothing_is_signalled(tmux_env: TmuxEnv) -> None:
    """A sandbox that denies AF_NETLINK leaves orphans unproven: never signalled, and health
    says it could not check (never "no orphans")."""
    server = orphan(tmux_env, "unproven")

    result = run_without_netlink("recover", "--json", env=tmux_env.env)
    assert result.code == 1, result.err
    assert result.json()["ok"] is False
    assert "netlink (sock_diag) unavailable" in result.json()["error"]
    assert not os.path.exists(server.path)
    assert not os.path.exists(server.path + ".lock")

    nagios = run_without_netlink("health", "--format", "nagios", env=tmux_env.env)
    assert nagios.code == 3, nagios.out  # the orphan check could not run: UNKNOWN
    report = run_without_netlink("health", "--json", env=tmux_env.env).json()
    assert "sock_diag" in report["orphan_error"]
    assert report["orphaned"] == 0
    assert pid_alive(server.pid)


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
