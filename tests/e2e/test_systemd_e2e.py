"""End to end against a real `systemd --user` manager of a throw-away user
(forge_tmux_testing.systemd_user): install, a simulated boot that must sweep before the post-boot
sessions, a spawned session that survives its service's restart, and an uninstall that leaves
nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import socket
import textwrap
from pathlib import Path

import pytest

from forge_tmux_testing import REPO
from forge_tmux_testing.processes import wait_for
from forge_tmux_testing.systemd_user import UserManager, missing_requirements

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(missing_requirements() is not None, reason=str(missing_requirements())),
]

SWEEP = "forge-tmux-socket-sweep.service"
TIMER = "forge-tmux-socket-sweep.timer"
POST_BOOT = "forge-post-boot-sessions.service"

# A stand-in for the operator's own post-boot unit: it records whether the stale socket was still
# there when it ran. It must have been swept first.
STAND_IN = textwrap.dedent(
    """\
    [Unit]
    Description=stand-in post-boot sessions (test)

    [Service]
    Type=oneshot
    RemainAfterExit=yes
    ExecStart=/bin/sh -c 'if [ -e {stale} ]; then echo present; else echo swept; fi > %h/saw'

    [Install]
    WantedBy=default.target
    """
)


def forge(mgr: UserManager, venv: Path, *args: str) -> tuple[int, str, str]:
    proc = mgr.run([str(venv / "bin" / "forge-tmux"), *args], timeout=240)
    return proc.returncode, proc.stdout, proc.stderr


def tree(root: str) -> set[str]:
    found = set()
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(here, name), root))
    return found


def make_stale(mgr: UserManager, name: str) -> str:
    """A stale tmux socket (bound, never listened) owned by the user in /tmp/tmux-UID."""
    os.makedirs(mgr.tmux_dir, mode=0o700, exist_ok=True)
    os.chown(mgr.tmux_dir, mgr.uid, mgr.uid)
    os.chmod(mgr.tmux_dir, 0o700)
    path = os.path.join(mgr.tmux_dir, name)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()
    os.lchown(path, mgr.uid, mgr.uid)
    return path


def test_install_boot_order_and_uninstall(manager: UserManager, venv: Path) -> None:
    unit_dir = Path(manager.home, ".config/systemd/user")
    stale = os.path.join(manager.tmux_dir, "e2e-stale")
    # The operator's own post-boot unit, enabled, before forge-tmux is installed.
    unit_dir.mkdir(parents=True)
    stand_in = unit_dir / POST_BOOT
    stand_in.write_text(STAND_IN.format(stale=stale))
    os.system(f"chown -R {manager.uid}:{manager.uid} {manager.home}/.config")  # noqa: S605
    assert manager.systemctl("daemon-reload").returncode == 0
    assert manager.systemctl("enable", POST_BOOT).returncode == 0
    before = tree(manager.home)
    stand_in_text = stand_in.read_text()

    code, out, err = forge(manager, venv, "units", "install", "--with-post-boot", "--json")
    assert code == 0, (out, err)
    result = json.loads(out)
    assert result["ok"] is True
    assert str(stand_in) in result["kept"]  # never overwritten
    assert stand_in.read_text() == stand_in_text
    assert any("loginctl enable-linger" in n for n in result["notes"])  # no logind here
    timers = manager.systemctl("list-timers", "--all", "--no-legend").stdout
    assert TIMER in timers
    assert manager.show(TIMER, "ActiveState")["ActiveState"] == "active"
    swept = manager.show(SWEEP, "Result", "ExecMainStatus")
    assert swept == {"Result": "success", "ExecMainStatus": "0"}
    code, out, _ = forge(manager, venv, "units", "status", "--json")
    assert code == 0, out
    status = json.loads(out)
    assert status["ok"] is True
    assert status["timer_next"]  # a wall-clock time: the timer is scheduled

    # Simulated boot: the manager goes down, a stale socket is left behind, the manager comes up.
    manager.stop()
    saw = Path(manager.home, "saw")
    saw.unlink(missing_ok=True)
    make_stale(manager, "e2e-stale")
    manager.start()
    wait_for(saw.exists, timeout=30)
    assert saw.read_text().strip() == "swept", "post-boot ran before the sweep"
    assert not os.path.exists(stale)
    sweep_run = manager.show(SWEEP, "Result", "ExecMainExitTimestampMonotonic")
    post_run = manager.show(POST_BOOT, "ExecMainStartTimestampMonotonic")
    assert sweep_run["Result"] == "success"
    assert int(sweep_run["ExecMainExitTimestampMonotonic"]) <= int(
        post_run["ExecMainStartTimestampMonotonic"]
    )

    code, out, err = forge(manager, venv, "doctor", "--json")
    checks = {c["name"]: c["level"] for c in json.loads(out)["checks"]}
    assert checks[SWEEP] == "ok" and checks[TIMER] == "ok", out
    assert checks["last sweep"] == "ok", out
    assert checks["lingering"] == "warn", out

    code, out, err = forge(manager, venv, "units", "uninstall", "--json")
    assert code == 0, (out, err)
    saw.unlink()
    assert tree(manager.home) == before  # nothing left behind, the operator's unit untouched
    assert stand_in.read_text() == stand_in_text
    assert TIMER not in manager.systemctl("list-timers", "--all", "--no-legend").stdout
    assert manager.show(SWEEP, "LoadState")["LoadState"] == "not-found"


def spawns_running(mgr: UserManager) -> bool:
    """Whether a `forge-tmux spawn` of the user is still running."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != mgr.uid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if b"spawn" in argv and any(a.endswith(b"forge-tmux") for a in argv):
            return True
    return False


def test_spawned_session_survives_service_restart(manager: UserManager, venv: Path) -> None:
    forge_tmux = str(venv / "bin" / "forge-tmux")
    code, out, err = forge(manager, venv, "spawn", "--help")
    if code != 0 and "No such command" in err:
        pytest.skip(
            "`forge-tmux spawn` is not on this branch yet (the spawn branch has not landed)"
        )
    code, out, err = forge(manager, venv, "units", "install", "--with-bot", "--json")
    assert code == 0, (out, err)
    # The real bot unit, with its ExecStart replaced: spawn a session, then stay up like the bot.
    dropin = Path(manager.home, ".config/systemd/user/forge-tmux-bot.service.d")
    dropin.mkdir()
    (dropin / "e2e.conf").write_text(
        "[Service]\nExecStart=\n"
        f"ExecStart=/bin/sh -c '{forge_tmux} spawn e2e-keep -- sleep 100000; exec sleep 100000'\n"
    )
    os.system(f"chown -R {manager.uid}:{manager.uid} {dropin}")  # noqa: S605
    try:
        assert manager.systemctl("daemon-reload").returncode == 0
        assert manager.systemctl("restart", "forge-tmux-bot.service").returncode == 0
        tmux = ["tmux", "-L", "spawn-e2e-keep"]

        def server_pid() -> str:
            proc = manager.run([*tmux, "display-message", "-p", "-t", "=e2e-keep", "#{pid}"])
            return proc.stdout.strip() if proc.returncode == 0 else ""

        wait_for(lambda: bool(server_pid()), timeout=30)
        first = server_pid()
        # The spawn gave the server a scope of its own; KillMode=process is only the fallback.
        with open(f"/proc/{first}/cgroup") as fh:
            assert "forge-tmux-bot.service" not in fh.read()
        assert manager.systemctl("restart", "forge-tmux-bot.service").returncode == 0
        assert manager.systemctl("stop", "forge-tmux-bot.service").returncode == 0
        assert server_pid() == first, "the session died with its service"
        # KillMode=process stops only the bot's main process: a `forge-tmux spawn` child of an
        # earlier start may still be running, and after the kill-server below it would start
        # e2e-keep again (a marked session that the shutdown save then keeps). Let it finish.
        wait_for(lambda: not spawns_running(manager), timeout=60)
        manager.run([*tmux, "kill-server"])
    finally:
        for path in dropin.iterdir():
            path.unlink()
        dropin.rmdir()
        code, out, err = forge(manager, venv, "units", "uninstall", "--json")
        assert code == 0, (out, err)


def test_install_sh_with_a_running_manager(manager: UserManager) -> None:
    """install.sh as the user, from a copy of the tree they own (pip builds in the tree)."""
    src = Path(manager.home, "src")
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__"),
    )
    os.system(f"chown -R {manager.uid}:{manager.uid} {src}")  # noqa: S605
    before = tree(manager.home)
    install = ["bash", str(src / "install.sh")]
    first = manager.run(install, timeout=300, PYTHON="/usr/bin/python3")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "the sweep timer is enabled" in first.stdout
    assert TIMER in manager.systemctl("list-timers", "--all", "--no-legend").stdout
    exe = Path(manager.home, ".local/bin/forge-tmux")
    assert exe.is_symlink()
    assert manager.show(SWEEP, "ExecStart")["ExecStart"].find(os.readlink(exe)) >= 0

    second = manager.run(install, timeout=300, PYTHON="/usr/bin/python3")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "creating virtualenv" not in second.stdout

    gone = manager.run([*install, "--uninstall"], timeout=120)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert TIMER not in manager.systemctl("list-timers", "--all", "--no-legend").stdout
    # Empty XDG base directories may stay, as may pip's cache and the copied tree.
    xdg = {".local", ".local/share", ".local/state"}
    left = {p for p in tree(manager.home) - before - xdg if not p.startswith((".cache", "src"))}
    assert left == set()
    shutil.rmtree(src)


def test_the_sweep_unit_sandbox_keeps_the_kernel_check(manager: UserManager, venv: Path) -> None:
    """Inside the installed sweep unit (its sandbox as rendered), sock_diag still answers and
    /proc/locks and the user's processes' fds are readable: the sweep's last checks before an
    unlink, and before it releases a removed lock file, are not silently blinded. Root's own tmux
    (a server and an attached client, the usual case on a shared host) must not blind it either:
    their fds are unreadable to the user, but they cannot hold the user's lock files."""
    # Imported here: only this test starts processes of its own.
    import contextlib  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    tmpdir = tempfile.mkdtemp(prefix="ftroot", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env["TMUX_TMPDIR"] = tmpdir
    tmux = shutil.which("tmux") or "tmux"
    root_pids: list[int] = []
    client = None
    try:
        started = subprocess.run(
            [tmux, "-f", "/dev/null", "-L", "e2e", "new-session", "-d", "-P", "-F", "#{pid}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        root_pids.append(int(started.stdout.split()[0]))
        client = subprocess.Popen(
            [tmux, "-L", "e2e", "-C", "attach"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        root_pids.append(client.pid)
        code, out, err = forge(manager, venv, "units", "install", "--json")
        assert code == 0, (out, err)
        dropin = Path(manager.home, f".config/systemd/user/{SWEEP}.d")
        dropin.mkdir()
        check = (
            "import sys; from forge_tmux.probe import bound_files; "
            "from forge_tmux.locks import lock_table, openers; "
            "sys.exit(bound_files() is None or lock_table() is None "
            "or bool(openers(set()).suspects))"
        )
        (dropin / "e2e.conf").write_text(
            f"[Service]\nExecStart=\nExecStart={venv}/bin/python -c '{check}'\n"
        )
        os.system(f"chown -R {manager.uid}:{manager.uid} {dropin}")  # noqa: S605
        try:
            assert manager.systemctl("daemon-reload").returncode == 0
            manager.systemctl("start", SWEEP)
            assert all(os.path.exists(f"/proc/{pid}") for pid in root_pids)
            assert manager.show(SWEEP, "Result", "ExecMainStatus") == {
                "Result": "success",
                "ExecMainStatus": "0",
            }
        finally:
            shutil.rmtree(dropin)
            code, out, err = forge(manager, venv, "units", "uninstall", "--json")
            assert code == 0, (out, err)
    finally:
        if client is not None:
            client.kill()
            client.wait()
        for pid in root_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmpdir, ignore_errors=True)
