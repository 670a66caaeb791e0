"""A throw-away user with a real `systemd --user` manager, on a machine where systemd is not PID 1
(the recipe in ../shared/docs/systemd-facts.md), and a virtualenv that user can execute.

Everything made here is undone by `close()`: the manager and every process of the throw-away
uid are stopped by pid, the user (and home) deleted, its runtime directory, cgroups and tmux
directory removed. The uid is picked from 1600-1699 among those nobody uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = "/usr/lib/systemd/systemd"
DEBIAN_PYTHON = "/usr/bin/python3"
CGROUP_ROOT = "/sys/fs/cgroup"


def missing_requirements() -> str | None:
    """Why the systemd end-to-end tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (creates a throw-away user and a systemd --user manager)"
    for tool in ("systemctl", "systemd-analyze", "setpriv", "useradd", "userdel"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.access(SYSTEMD, os.X_OK):
        return f"{SYSTEMD} is not installed"
    if not os.access(DEBIAN_PYTHON, os.X_OK):
        return f"{DEBIAN_PYTHON} is not installed"
    return None


# ----------------------------------------------------------------------------------------------
# The virtualenv the throw-away user runs forge-tmux from


def source_hash() -> str:
    digest = hashlib.sha256()
    for base in ("forge_tmux", "units"):
        for path in sorted((REPO / base).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode())
                digest.update(path.read_bytes())
    digest.update((REPO / "pyproject.toml").read_bytes())
    return digest.hexdigest()[:16]


def e2e_venv() -> Path:
    """/var/tmp/forge-tmux-e2e-<hash>: Debian's python, the package (not editable) and its
    dependencies, world-readable; built once per source tree and reused."""
    target = Path(f"/var/tmp/forge-tmux-e2e-{source_hash()}")
    marker = target / ".complete"
    if marker.exists():
        return target
    lock_path = Path("/var/tmp/forge-tmux-e2e.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return target
        # Built in place (a venv's scripts carry its absolute path); the marker comes last, so a
        # half-built one is never used.
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([DEBIAN_PYTHON, "-m", "venv", str(target)], check=True)
        subprocess.run(
            [
                str(target / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                str(REPO),
            ],
            check=True,
            cwd="/",
        )
        subprocess.run(["chmod", "-R", "a+rX", str(target)], check=True)
        marker.touch()
        _prune_old_venvs(target)
    return target


def _prune_old_venvs(keep: Path) -> None:
    for old in Path("/var/tmp").glob("forge-tmux-e2e-*"):
        if old != keep and old.is_dir() and time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# The throw-away user and its manager


def _free_uid() -> int:
    for uid in range(1600, 1700):
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        if os.path.exists(f"/run/user/{uid}") or any(
            os.path.exists(f"{CGROUP_ROOT}/{h}user.slice/user-{uid}.slice")
            for h in ("", "unified/", "systemd/")
        ):
            continue
        return uid
    raise RuntimeError("no free uid in 1600-1699")


class UserManager:
    """A throw-away user and its `systemd --user`, started and stopped by pid."""

    def __init__(self) -> None:
        self.uid = _free_uid()
        self.name = f"ftx{self.uid}{secrets.token_hex(3)}"
        self.home = f"/home/{self.name}"
        self.runtime = f"/run/user/{self.uid}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(f"/var/tmp/{self.name}-manager.log")
        # Hybrid hierarchy here (name=systemd v1 plus unified v2); a pure v2 machine has one root.
        roots = [f"{CGROUP_ROOT}/{h}" for h in ("systemd", "unified")]
        roots = [r for r in roots if os.path.isdir(r)] or [CGROUP_ROOT]
        self._cgroups = [f"{r}/user.slice/user-{self.uid}.slice" for r in roots]
        subprocess.run(
            ["useradd", "-m", "-u", str(self.uid), "-U", "-s", "/bin/sh", self.name], check=True
        )
        os.makedirs(self.runtime, mode=0o700, exist_ok=True)
        os.chown(self.runtime, self.uid, self.uid)
        os.makedirs("/run/systemd/system", exist_ok=True)
        for slice_dir in self._cgroups:
            service = f"{slice_dir}/user@{self.uid}.service"
            os.makedirs(service, exist_ok=True)
            for path in (slice_dir, service):
                os.chown(path, self.uid, self.uid)
            for entry in os.listdir(service):
                os.chown(os.path.join(service, entry), self.uid, self.uid)

    @property
    def tmux_dir(self) -> str:
        return f"/tmp/tmux-{self.uid}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "HOME": self.home,
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "XDG_RUNTIME_DIR": self.runtime,
            "LANG": "C.UTF-8",
            **extra,
        }

    def _as_user(self) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--init-groups"]

    def run(
        self, argv: Sequence[str], timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run argv as the user, with a login-like environment."""
        return subprocess.run(
            [
                *self._as_user(),
                "env",
                "-i",
                *(f"{k}={v}" for k, v in self.env(**env).items()),
                *argv,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
        )

    def systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--user", "--no-pager", *args])

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def start(self) -> None:
        """Start the manager (a simulated boot of this user's session)."""
        assert self.proc is None
        procs = [f"{c}/user@{self.uid}.service/cgroup.procs" for c in self._cgroups]

        def enter_cgroup() -> None:  # in the child, before exec: delegate our own cgroup
            for path in procs:
                with open(path, "w") as fh:
                    fh.write(str(os.getpid()))

        log = open(self.log, "ab")  # handed to the child, closed below
        try:
            self.proc = subprocess.Popen(
                [
                    *self._as_user(),
                    "env",
                    "-i",
                    *(f"{k}={v}" for k, v in self.env().items()),
                    SYSTEMD,
                    "--user",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                preexec_fn=enter_cgroup,  # noqa: PLW1509 - single-threaded test process
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = self.systemctl("is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"user manager did not come up: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop the manager by its pid (it stops its units first), as a shutdown would."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def _user_pids(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{entry}").st_uid == self.uid:
                        pids.append(int(entry))
        return pids

    def close(self) -> None:
        """Undo everything: manager, the user's processes (by pid), user, directories."""
        with contextlib.suppress(Exception):
            self.stop()
        for pid in self._user_pids():  # only processes of the throw-away uid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["userdel", "-r", "-f", self.name], capture_output=True, check=False)
        for path in (self.runtime, self.tmux_dir, f"/var/lib/systemd/linger/{self.name}"):
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        deadline = time.monotonic() + 10
        for slice_dir in self._cgroups:
            for root, dirs, _files in os.walk(slice_dir, topdown=False):
                for name in dirs:
                    _rmdir_retry(os.path.join(root, name), deadline)
            _rmdir_retry(slice_dir, deadline)
        with contextlib.suppress(OSError):
            self.log.unlink()


def _rmdir_retry(path: str, deadline: float) -> None:
    # A cgroup is busy for a moment after its last process exited.
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
