"""A test run leaves the host as it found it: the watchdog undoes a killed run's tmux worlds, the
keeper undoes a killed run's throw-away user and manager, the session-end check notices what is
left, and uid allocation survives a concurrent run taking the same uid."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import textwrap

import pytest

from forge_tmux_testing import REPO, systemd_user
from forge_tmux_testing.plugin import HostState, leftovers
from forge_tmux_testing.processes import pid_alive, wait_for
from forge_tmux_testing.systemd_user import (
    USERADD_NAME_TAKEN,
    USERADD_UID_TAKEN,
    _cgroup_slices,
    _uid_pids,
    allocate,
    missing_requirements,
)
from forge_tmux_testing.tmux_world import TMUX, TmuxEnv, needs_tmux

TESTS = str(REPO / "tests")


def test_allocation_moves_on_when_useradd_finds_the_uid_or_name_taken() -> None:
    tried: list[tuple[int, str]] = []
    answers = iter([USERADD_UID_TAKEN, USERADD_NAME_TAKEN, 0])

    def add(uid: int, name: str) -> int:
        tried.append((uid, name))
        return next(answers)

    uid, name = allocate([1600, 1601, 1602], lambda uid: uid != 1601, add)
    # 1600 taken by a concurrent run between our look and useradd; 1601 looked taken; at 1602
    # the first name was taken, the second worked.
    assert [u for u, _ in tried] == [1600, 1602, 1602]
    assert (uid, name) == tried[-1]
    assert tried[1][1] != tried[2][1]


def test_allocation_gives_up_when_no_uid_is_free() -> None:
    with pytest.raises(RuntimeError, match="no free uid in 1600-1601"):
        allocate([1600, 1601], lambda uid: True, lambda uid, name: USERADD_UID_TAKEN)


def child(code: str) -> subprocess.Popen[str]:
    """A Python process standing in for a test run, to be killed like one."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=TESTS,
        env={**os.environ, "PYTHONPATH": TESTS},
    )


@needs_tmux
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_watchdog_undoes_a_killed_run(sig: int) -> None:
    run = child(
        f"""
        import os, subprocess, tempfile, time
        from forge_tmux_testing.hostguard import Guard
        guard = Guard()
        root = tempfile.mkdtemp(prefix="ftg", dir="/tmp")
        guard.tmux_world(root)
        env = dict(os.environ, TMUX_TMPDIR=root)
        env.pop("TMUX", None)
        tmux = [{TMUX!r}, "-f", "/dev/null", "-L", "g"]
        subprocess.run([*tmux, "new-session", "-d", "sleep 100000"], env=env, check=True)
        pid = subprocess.run([*tmux, "display-message", "-p", "#{{pid}}"], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
        print(root, pid, flush=True)
        time.sleep(300)
        """
    )
    assert run.stdout is not None
    root, pid = run.stdout.readline().split()
    try:
        assert os.path.isdir(root) and pid_alive(int(pid))
    finally:
        run.send_signal(sig)
        run.wait()
    wait_for(lambda: not pid_alive(int(pid)) and not os.path.exists(root), timeout=15)


@needs_tmux
def test_the_session_check_names_a_tmux_server_left_running(tmux_env: TmuxEnv) -> None:
    before = HostState()
    server = tmux_env.start("left")
    assert any(str(server.pid) in line and tmux_env.root in line for line in leftovers(before))
    os.kill(server.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(server.pid))
    assert leftovers(before) == []


def test_the_session_check_names_run_systemd_system_created_during_the_run() -> None:
    before = HostState()
    before.run_systemd_system = False  # as if it had not been there at the start
    left = leftovers(before)
    assert any("/run/systemd/system" in line for line in left) == os.path.lexists(
        "/run/systemd/system"
    )


@pytest.mark.systemd
@pytest.mark.skipif(missing_requirements() is not None, reason=str(missing_requirements()))
def test_a_killed_run_leaves_no_user_manager_or_run_systemd_behind() -> None:
    host_had_run_systemd = os.path.lexists("/run/systemd/system")
    run = child(
        """
        import json, time
        from forge_tmux_testing.systemd_user import UserManager
        mgr = UserManager()
        mgr.start()
        inside = mgr.run(["test", "-d", "/run/systemd/system"]).returncode
        state = mgr.systemctl("is-system-running").stdout.strip()
        print(json.dumps({"uid": mgr.uid, "name": mgr.name, "home": mgr.home,
                          "manager": mgr.proc.pid, "inside": inside, "state": state}), flush=True)
        time.sleep(300)
        """
    )
    assert run.stdout is not None
    made = json.loads(run.stdout.readline())
    uid, name = made["uid"], made["name"]
    try:
        # The manager runs and sees a booted systemd; the host sees none of it.
        assert made["state"] in ("running", "degraded")
        assert made["inside"] == 0
        assert pid_alive(made["manager"])
        assert os.path.lexists("/run/systemd/system") == host_had_run_systemd
        assert not os.path.exists(f"/run/user/{uid}")
        assert pwd.getpwnam(name).pw_uid == uid
    finally:
        run.kill()  # SIGKILL: no finaliser of the run gets to do anything
        run.wait()

    def gone() -> bool:
        try:
            pwd.getpwnam(name)
            return False
        except KeyError:
            pass
        return not _uid_pids(uid) and not any(os.path.exists(s) for s in _cgroup_slices(uid))

    wait_for(gone, timeout=60)
    assert not pid_alive(made["manager"])
    assert not os.path.exists(made["home"])
    assert not os.path.exists(f"/tmp/tmux-{uid}")
    assert os.path.lexists("/run/systemd/system") == host_had_run_systemd


def test_the_session_check_names_a_user_left_and_not_a_uid_taken_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    me = pwd.getpwuid(os.getuid())
    # A user of ours still there (stand-in: this process's own account, which has processes).
    monkeypatch.setattr(systemd_user, "_STARTED", [(me.pw_uid, me.pw_name)])
    left = systemd_user.leftovers()
    assert f"throw-away user {me.pw_name}" in left
    assert any(str(os.getpid()) in line for line in left)
    # Ours is gone and a concurrent run made its own user with the same uid: not ours to report.
    monkeypatch.setattr(systemd_user, "_STARTED", [(me.pw_uid, "ftx-gone-since")])
    assert systemd_user.leftovers() == []
