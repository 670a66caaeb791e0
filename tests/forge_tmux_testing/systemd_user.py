"""A throw-away user with a real `systemd --user` manager, on a machine where systemd is not PID 1
(the recipe in ../shared/docs/systemd-facts.md), and a virtualenv that user can execute.

Nothing of it outlives the test process, however that ends. Everything that changes the host is
made and undone by a keeper process (this module's `keep()`, started under
`unshare --mount --propagation private` in a session of its own):
- It creates the user (uid from 1600-1699) and delegates its cgroups. Concurrent runs from other
  trees do the same: a uid is taken only when nothing of it is visible (passwd, group, runtime
  directory, cgroup, tmux directory, a process), and `useradd` itself is the arbiter: when it
  reports the uid or the name taken, the keeper tries the next one. It only ever removes the
  user it created and that uid's processes, cgroups and directories.
- It mounts a tmpfs on /run in its private mount namespace and makes `/run/systemd/system` (which
  a user manager needs to start) and `/run/user/UID` there. The manager and every command run
  as the user join that namespace (`nsenter`), so they see a booted systemd; the host never
  does: `/run/systemd/system` on the host would make it look booted with systemd to sd_booted(),
  package maintainer scripts and forge-tmux's own scope.py. The tmpfs vanishes with the
  namespace.
- It keeps the read end of a pipe whose write end only the test process holds. End of file
  (close(), or the test process gone by SIGINT, SIGTERM or SIGKILL) makes it kill every process
  of the uid by pid, delete the user and its home, remove the cgroups and the tmux directory, and
  exit.

The virtualenv: the package is installed fresh for every run into a directory of that run that
a watchdog removes (hostguard.py), on top of a deliberate cache of its dependencies only,
`/var/tmp/forge-tmux-e2e-deps-<key>` (54 MB measured; the key hashes the dependency list and the
Python version, so source changes never rebuild it). A run holds a shared lock on the cache it
uses; a cache of another key that nobody holds is removed, so at most one per dependency set in
use exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

from forge_tmux_testing import REPO
from forge_tmux_testing.hostguard import Guard

SYSTEMD = "/usr/lib/systemd/systemd"
DEBIAN_PYTHON = "/usr/bin/python3"
CGROUP_ROOT = "/sys/fs/cgroup"
UIDS = range(1600, 1700)
CACHE_PREFIX = "/var/tmp/forge-tmux-e2e-deps-"
# useradd's exit statuses (shadow-utils): the uid, or the name, is already taken.
USERADD_UID_TAKEN = 4
USERADD_NAME_TAKEN = 9
# The keeper's command line: this module imported as part of its package (it imports its
# siblings), run from "/" like every helper process, with tests/ given as the import root.
TESTS = str(Path(__file__).resolve().parents[1])
KEEPER = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from forge_tmux_testing.systemd_user import keep; keep()"
)


def missing_requirements() -> str | None:
    """Why the systemd end-to-end tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (creates a throw-away user and a systemd --user manager)"
    tools = ("systemctl", "systemd-analyze", "setpriv", "useradd", "userdel", "unshare", "nsenter")
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.access(SYSTEMD, os.X_OK):
        return f"{SYSTEMD} is not installed"
    if not os.access(DEBIAN_PYTHON, os.X_OK):
        return f"{DEBIAN_PYTHON} is not installed"
    return None


# ----------------------------------------------------------------------------------------------
# The virtualenv the throw-away user runs forge-tmux from

_CACHE_LOCK: int | None = None  # shared lock on the dependency cache, held for the process
_CACHE: Path | None = None  # the cache this process locked (pyproject.toml may change meanwhile)


def _dependencies() -> list[str]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [*meta["project"]["dependencies"], *meta["build-system"]["requires"]]


def _cache_key() -> str:
    version = subprocess.run(
        [DEBIAN_PYTHON, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return hashlib.sha256(json.dumps([version, _dependencies()]).encode()).hexdigest()[:12]


def _locked(path: Path, mode: int) -> int:
    """An fd of `path`/.lock with `mode` held, on the file that is still there (a pruner may have
    removed the directory between our open and our lock)."""
    while True:
        path.mkdir(mode=0o755, exist_ok=True)
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, mode)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path / ".lock").st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)


def dependency_cache() -> Path:
    """The cached dependencies (a venv of Debian's python), built once per dependency set."""
    global _CACHE_LOCK, _CACHE  # noqa: PLW0603 - held until the process ends
    if _CACHE is None:
        _CACHE = Path(CACHE_PREFIX + _cache_key())
    cache = _CACHE
    venv = cache / "venv"
    if _CACHE_LOCK is None:
        fd = _locked(cache, fcntl.LOCK_EX)
        try:
            if not (venv / ".complete").exists():
                shutil.rmtree(venv, ignore_errors=True)
                subprocess.run([DEBIAN_PYTHON, "-m", "venv", str(venv)], check=True)
                pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
                subprocess.run(
                    [*pip, "--disable-pip-version-check", "--no-cache-dir", *_dependencies()],
                    check=True,
                    cwd="/",
                )
                subprocess.run(["chmod", "-R", "a+rX", str(cache)], check=True)
                (venv / ".complete").touch()
            fcntl.flock(fd, fcntl.LOCK_SH)  # downgrade: in use, never pruned under us
        except BaseException:
            os.close(fd)
            raise
        _CACHE_LOCK = fd
        _prune_other_caches(cache)
    return venv


def _prune_other_caches(keep: Path) -> None:
    for other in Path(CACHE_PREFIX).parent.glob(Path(CACHE_PREFIX).name + "*"):
        if other == keep or not other.is_dir():
            continue
        try:
            fd = os.open(other / ".lock", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # another run uses it
        try:
            shutil.rmtree(other, ignore_errors=True)
        finally:
            os.close(fd)


_VENV: Path | None = None
_VENV_GUARD: Guard | None = None


def e2e_venv() -> Path:
    """This run's virtualenv, readable by every user: Debian's python, the package as it is now
    (not editable; a few hundred kB), the dependencies from the cache through a .pth file. A
    watchdog removes it when the test process ends, however it ends (hostguard.py)."""
    global _VENV, _VENV_GUARD  # noqa: PLW0603 - one per test process
    if _VENV is not None:
        return _VENV
    deps = dependency_cache()
    target = Path(tempfile.mkdtemp(prefix="forge-tmux-e2e-venv-", dir="/var/tmp"))
    _VENV_GUARD = Guard()
    _VENV_GUARD.tree(str(target))
    target.chmod(0o755)
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", "--without-pip", str(target)], check=True)
    site = subprocess.run(
        [
            str(target / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps_site = next((deps / "lib").glob("python3*/site-packages"))
    Path(site, "_forge_tmux_e2e_deps.pth").write_text(f"{deps_site}\n")
    subprocess.run(
        [
            str(target / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-deps",
            "--no-build-isolation",
            str(REPO),
        ],
        check=True,
        cwd="/",
    )
    subprocess.run(["chmod", "-R", "a+rX", str(target)], check=True)
    _VENV = target
    return target


# ----------------------------------------------------------------------------------------------
# The throw-away user, made and undone by the keeper

_STARTED: list[tuple[int, str]] = []  # (uid, name) of every user this process had made


def leftovers() -> list[str]:
    """What of this process's throw-away users is still on the host."""
    found = []
    for uid, name in _STARTED:
        try:
            owner = pwd.getpwuid(uid).pw_name
        except KeyError:
            owner = name  # no account: processes of the uid can only be what ours left
        if owner == name:
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                found.append(f"throw-away user {name}")
            pids = _uid_pids(uid)
            if pids:
                found.append(f"processes {sorted(pids)} of throw-away uid {uid}")
        # else a concurrent run has since made its own user with that uid: its processes are its
    return found


def _uid_pids(uid: int) -> list[int]:
    """Live processes of `uid`. Zombies are left out: SIGKILL cannot remove one, only its parent
    (the test process, for the manager it started) can reap it, and it holds nothing."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    if fh.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                        pids.append(int(entry))
    return pids


def _cgroup_slices(uid: int) -> list[str]:
    # Hybrid hierarchy here (name=systemd v1 plus unified v2); a pure v2 machine has one root.
    roots = [f"{CGROUP_ROOT}/{h}" for h in ("systemd", "unified")]
    roots = [r for r in roots if os.path.isdir(r)] or [CGROUP_ROOT]
    return [f"{r}/user.slice/user-{uid}.slice" for r in roots]


def uid_looks_free(uid: int) -> bool:
    """Nothing of `uid` is visible: no account, group, runtime or tmux directory, cgroup or
    process (a leftover of a crashed run is somebody else's to clean, never ours to reuse)."""
    with contextlib.suppress(KeyError):
        pwd.getpwuid(uid)
        return False
    with contextlib.suppress(KeyError):
        grp.getgrgid(uid)
        return False
    paths = [f"/run/user/{uid}", f"/tmp/tmux-{uid}", *_cgroup_slices(uid)]
    return not any(os.path.lexists(p) for p in paths) and not _uid_pids(uid)


def allocate(
    candidates: Sequence[int],
    free: Callable[[int], bool],
    add: Callable[[int, str], int],
) -> tuple[int, str]:
    """The first candidate uid that looks free and that `add` (useradd) accepts; a uid or name
    another run took between our look and useradd is skipped, not an error."""
    for uid in candidates:
        if not free(uid):
            continue
        for _attempt in range(5):
            name = f"ftx{uid}{secrets.token_hex(3)}"
            code = add(uid, name)
            if code == 0:
                return uid, name
            if code == USERADD_UID_TAKEN:
                break
            if code != USERADD_NAME_TAKEN:
                time.sleep(0.5)  # e.g. /etc/passwd locked by a concurrent useradd: try again
    raise RuntimeError(f"no free uid in {candidates[0]}-{candidates[-1]}")


def _useradd(uid: int, name: str) -> int:
    code = subprocess.run(
        ["useradd", "-m", "-u", str(uid), "-U", "-s", "/bin/sh", name], capture_output=True
    ).returncode
    if code == 0 and pwd.getpwnam(name).pw_gid != uid:  # the group must share the number
        subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
        return USERADD_UID_TAKEN
    return code


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(0)  # the finally below undoes everything


def keep() -> None:
    """The keeper (see the module docstring); runs as root under `unshare --mount`."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only end of file, or SIGTERM, ends us
    signal.signal(signal.SIGTERM, _terminated)
    uid, name = allocate(UIDS, uid_looks_free, _useradd)
    try:
        home = pwd.getpwnam(name).pw_dir
        # Private to this namespace: the host's /run is not changed at all.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "ftx-run", "/run"], check=True)
        runtime = f"/run/user/{uid}"
        os.makedirs("/run/systemd/system")
        os.makedirs(runtime, mode=0o700)
        os.chown(runtime, uid, uid)
        for slice_dir in _cgroup_slices(uid):
            service = f"{slice_dir}/user@{uid}.service"
            os.makedirs(service, exist_ok=True)
            for path in (slice_dir, service):
                os.chown(path, uid, uid)
            for entry in os.listdir(service):
                os.chown(os.path.join(service, entry), uid, uid)
        print(json.dumps({"uid": uid, "name": name, "home": home}), flush=True)
        with contextlib.suppress(ValueError, OSError):
            sys.stdin.read()  # until the test process closes the pipe or is gone
    finally:
        _undo(uid, name)
    with contextlib.suppress(OSError):  # nobody may be listening any more
        print("clean", flush=True)


def _undo(uid: int, name: str) -> None:
    deadline = time.monotonic() + 20
    # Kill by pid, again until none is left: a dying manager may still fork.
    while (pids := _uid_pids(uid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True, check=False)
    for path in (f"/tmp/tmux-{uid}", f"/var/lib/systemd/linger/{name}"):
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    for slice_dir in _cgroup_slices(uid):
        for root, dirs, _files in os.walk(slice_dir, topdown=False):
            for sub in dirs:
                _rmdir_retry(os.path.join(root, sub), deadline)
        _rmdir_retry(slice_dir, deadline)


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


class UserManager:
    """A throw-away user and its `systemd --user`, started and stopped by pid."""

    def __init__(self) -> None:
        self.keeper = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", KEEPER, TESTS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            cwd="/",
        )
        assert self.keeper.stdout is not None
        line = self.keeper.stdout.readline()
        if not line:
            self.keeper.wait()
            raise RuntimeError("the keeper of the throw-away user failed")
        made = json.loads(line)
        self.uid: int = made["uid"]
        self.name: str = made["name"]
        self.home: str = made["home"]
        _STARTED.append((self.uid, self.name))
        self.runtime = f"/run/user/{self.uid}"  # inside the keeper's mount namespace
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(self.home, ".manager.log")
        self._cgroups = _cgroup_slices(self.uid)

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

    def _as_user(self, **extra: str) -> list[str]:
        """Enter the keeper's mount namespace, become the user, start from a clean environment."""
        return [
            "nsenter",
            f"--target={self.keeper.pid}",
            "--mount",
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.uid}",
            "--init-groups",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in self.env(**extra).items()),
        ]

    def run(
        self, argv: Sequence[str], timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run argv as the user, with a login-like environment."""
        return subprocess.run(
            [*self._as_user(**env), *argv],
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
                [*self._as_user(), SYSTEMD, "--user"],
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

    def close(self) -> None:
        """Undo everything: stop the manager, then let the keeper remove the rest and wait."""
        with contextlib.suppress(Exception):
            self.stop()
        assert self.keeper.stdin is not None and self.keeper.stdout is not None
        self.keeper.stdin.close()
        done = self.keeper.stdout.read()
        self.keeper.wait(timeout=60)
        if self.proc is not None:  # a stop() cut short: the keeper killed it, reap it here
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            self.proc = None
        if done.strip() != "clean":
            raise RuntimeError(f"the keeper of {self.name} did not finish: {done!r}")
