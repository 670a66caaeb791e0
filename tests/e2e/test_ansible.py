"""contrib/ansible applied for real: `ansible-playbook -c local` installs forge-tmux for a
throw-away user with its own `systemd --user` (forge_tmux_testing.systemd_user), twice; the second
run changes nothing, the timers are listed by that user's manager, and the metrics the health timer
writes after the install's real sweep parse with prometheus_client."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forge_tmux import __version__
from forge_tmux_testing import REPO
from forge_tmux_testing.hostguard import Guard
from forge_tmux_testing.systemd_user import (
    UserManager,
    dependency_cache,
    missing_requirements,
)

ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook") or os.path.join(
    os.path.dirname(sys.executable), "ansible-playbook"
)
pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(missing_requirements() is not None, reason=str(missing_requirements())),
    pytest.mark.skipif(
        not os.access(ANSIBLE_PLAYBOOK, os.X_OK),
        reason="ansible-playbook is not installed (pip install ansible-core; scripts/test does)",
    ),
]

ROLES = REPO / "contrib" / "ansible" / "roles"
PLAY = """\
- hosts: localhost
  gather_facts: false
  roles:
    - forge_tmux
"""


_WHEELHOUSE: tuple[Path, Guard] | None = None


def wheelhouse() -> Path:
    """forge-tmux and its dependencies as wheels, world-readable, built once per test run in a
    directory the watchdog removes however the run ends: the role installs them with
    `--no-index --find-links`, as an offline fleet would."""
    global _WHEELHOUSE  # noqa: PLW0603 - one per test process
    if _WHEELHOUSE is not None:
        return _WHEELHOUSE[0]
    target = Path(tempfile.mkdtemp(prefix="forge-tmux-wheels-", dir="/var/tmp"))
    guard = Guard()
    guard.tree(str(target))
    _WHEELHOUSE = (target, guard)
    python = dependency_cache() / "bin" / "python"  # Debian's python: the wheels must fit it
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "wheel",
            "-q",
            "--disable-pip-version-check",
            "-w",
            str(target),
            str(REPO),
        ],
        check=True,
        cwd="/",
    )
    subprocess.run(["chmod", "-R", "a+rX", str(target)], check=True)
    return target


def stale_socket(mgr: UserManager, name: str) -> str:
    """A socket file of the user's with nobody listening, in its tmux directory."""
    os.makedirs(mgr.tmux_dir, mode=0o700, exist_ok=True)
    os.chown(mgr.tmux_dir, mgr.uid, mgr.uid)
    path = os.path.join(mgr.tmux_dir, name)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(path)
    os.chown(path, mgr.uid, mgr.uid)
    return path


def play(tmp: Path, extra: dict[str, object], mgr: UserManager) -> subprocess.CompletedProcess[str]:
    (tmp / "play.yml").write_text(PLAY)
    (tmp / "inventory").write_text(
        "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n"
    )
    (tmp / "vars.json").write_text(json.dumps(extra))
    env = {
        "PATH": f"{os.path.dirname(ANSIBLE_PLAYBOOK)}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_BECOME_METHOD": "su",  # root becomes the user; sudo is not installed here
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_PIPELINING": "1",
    }
    return subprocess.run(
        [
            # The user's manager and its /run/user/UID live in the keeper's mount namespace
            # (forge_tmux_testing.systemd_user): ansible must run there to reach it, as root, and
            # `su` in.
            "nsenter",
            f"--target={mgr.keeper.pid}",
            "--mount",
            ANSIBLE_PLAYBOOK,
            "-i",
            str(tmp / "inventory"),
            "-c",
            "local",
            "-e",
            f"@{tmp / 'vars.json'}",
            str(tmp / "play.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=str(tmp),
        check=False,
    )


def recap(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    line = re.search(r"^localhost\s+:\s+(.*)$", result.stdout, re.M)
    assert line, result.stdout + result.stderr
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.group(1))}


def test_role_installs_idempotently_and_the_metrics_follow(
    manager: UserManager,
    tmp_path: Path,
) -> None:
    tmp_path.chmod(0o755)
    textfile_dir = Path(f"/var/tmp/{manager.name}-textfile")
    stale = stale_socket(manager, "spawn-old")
    extra = {
        "forge_tmux_user": manager.name,
        "forge_tmux_version": __version__,
        "forge_tmux_pip_extra_args": f"--no-index --find-links {wheelhouse()}",
        # A token but no chat: the units get the credential, nothing talks to Telegram.
        "forge_tmux_telegram_token": "123456:not-a-real-token",
        "forge_tmux_with_health_metrics": True,
        "forge_tmux_textfile_dir": str(textfile_dir),
        "forge_tmux_manage_textfile_dir": True,
    }
    try:
        first = play(tmp_path, extra, manager)
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        assert recap(first)["changed"] > 0
        second = play(tmp_path, extra, manager)
        assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
        counts = recap(second)
        assert counts["changed"] == 0, second.stdout[-4000:]
        assert counts["failed"] == 0

        timers = manager.systemctl("list-timers", "--all").stdout
        assert "forge-tmux-socket-sweep.timer" in timers
        assert "forge-tmux-health.timer" in timers
        # The token: the user's alone, handed to the units as a credential.
        token = Path(manager.home, ".config", "forge-tmux", "telegram-token")
        info = token.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, manager.uid)
        sweep_unit = Path(manager.home, ".config/systemd/user/forge-tmux-socket-sweep.service")
        assert f"LoadCredential=telegram-token:{token}" in sweep_unit.read_text()

        # The install ran the first sweep through systemd: the stale socket is gone, and the
        # health service (as its timer would) exports that sweep.
        assert not os.path.exists(stale)
        assert manager.systemctl("start", "forge-tmux-health.service").returncode == 0
        text = (textfile_dir / f"forge-tmux-{manager.uid}.prom").read_text()
        got = {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert got["forge_tmux_sweep_removed_total"] == 1
        assert got["forge_tmux_sweep_failures_total"] == 0
        assert got["forge_tmux_sweep_last_success_timestamp_seconds"] > 0
        assert got["forge_tmux_build_info"] == 1
    finally:
        shutil.rmtree(textfile_dir, ignore_errors=True)
