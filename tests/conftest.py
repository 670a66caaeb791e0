"""Shared fixtures: real tmux servers in a short private TMUX_TMPDIR, the CLI through its real
entry point, and helpers to act as another user.

Every test gets its own socket root; servers it starts are recorded by pid and killed by pid in
the finalizer (inside `suppress`, so cleanup never hides the real failure). Nothing here touches a
socket or a server the test did not create.

A run leaves the host as it found it. pytest's temporary directories live in one fresh directory
of this run (not /tmp/pytest-of-USER), removed at the end. Each tmux world and that directory are
also registered with a watchdog process (hostguard.py) that removes them when this process ends
in any way, SIGKILL included. At the end of the session `host_left_as_found` fails the run when
something the suite started is still there: a tmux server of one of its worlds, a throw-away
user, a process of such a user (its `systemd --user` among them), or `/run/systemd/system` where
there was none before (the user managers get theirs in a private mount namespace; see
systemd_user.py).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import systemd_user
from hostguard import Guard, tmux_processes

TMUX = shutil.which("tmux")
RUN_SYSTEMD_SYSTEM = "/run/systemd/system"
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, setuid)")


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Server:
    name: str
    path: str
    pid: int


@dataclass
class TmuxEnv:
    """A private tmux world: TMUX_TMPDIR, its socket directory, and the servers started in it."""

    root: str
    sockdir: str
    env: dict[str, str]
    pids: list[int] = field(default_factory=list)

    def tmux(
        self, *args: str, timeout: float = 10, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        assert TMUX is not None
        return subprocess.run(
            [TMUX, "-f", "/dev/null", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def path(self, name: str) -> str:
        return os.path.join(self.sockdir, name)

    def start(self, name: str, session: str = "main") -> Server:
        """A real tmux server on `-L name` with one session; its pid is recorded for cleanup."""
        self.tmux("-L", name, "new-session", "-d", "-s", session, "sleep 100000", check=True)
        pid = int(self.tmux("-L", name, "display-message", "-p", "#{pid}", check=True).stdout)
        self.pids.append(pid)
        return Server(name, self.path(name), pid)

    def stale(self, name: str) -> str:
        """A stale socket left the real way: a tmux server killed with SIGKILL."""
        server = self.start(name)
        os.kill(server.pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(server.pid))
        assert os.path.exists(server.path)
        return server.path

    def fake_stale(self, name: str, directory: str | None = None) -> str:
        """A stale socket made without tmux (bind, never listen): the same file tmux leaves."""
        path = os.path.join(directory or self.sockdir, name)
        make_stale_socket(path)
        return path

    def answers(self, server: Server) -> bool:
        result = self.tmux("-L", server.name, "list-sessions", "-F", "#{session_name}")
        return result.returncode == 0 and "main" in result.stdout.split()


def make_stale_socket(path: str) -> None:
    """Bind a unix socket at `path` and close it: connect() to it is then refused."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # bind() through a short relative name so paths longer than sun_path can be made too.
        here = os.getcwd()
        os.chdir(os.path.dirname(path) or ".")
        try:
            sock.bind(os.path.basename(path))
        finally:
            os.chdir(here)
    finally:
        sock.close()


@contextlib.contextmanager
def lock_held_elsewhere(lock_path: str) -> Iterator[None]:
    """Hold `lock_path` in another process, exactly as tmux's client_get_lock() does while a
    client starts a server (open O_CREAT 0600, flock LOCK_EX), until the block ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n",
            lock_path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)  # a SIGSTOP-ed server must be able to die
        os.kill(pid, signal.SIGKILL)


# ----------------------------------------------------------------------------------------------
# Leaving the host as it was found

_GUARD: Guard | None = None
_BASETEMP: str | None = None
_TMUX_ROOTS: list[str] = []  # every TMUX_TMPDIR this session made


@pytest.hookimpl(tryfirst=True)  # before pytest's tmpdir plugin reads --basetemp
def pytest_configure(config: pytest.Config) -> None:
    global _GUARD, _BASETEMP  # noqa: PLW0603 - one watchdog per test process
    _GUARD = Guard()
    if config.option.basetemp is None:
        _BASETEMP = tempfile.mkdtemp(prefix="forge-tmux-pytest-")
        _GUARD.tree(_BASETEMP)
        config.option.basetemp = _BASETEMP


def pytest_unconfigure(config: pytest.Config) -> None:
    if _BASETEMP is not None:
        shutil.rmtree(_BASETEMP, ignore_errors=True)
    if _GUARD is not None:
        _GUARD.close()


@dataclass
class HostState:
    """What the host looked like when the session started."""

    run_systemd_system: bool = field(default_factory=lambda: os.path.lexists(RUN_SYSTEMD_SYSTEM))


def leftovers(before: HostState) -> list[str]:
    """What the suite started or created and did not undo."""
    found = []
    if not before.run_systemd_system and os.path.lexists(RUN_SYSTEMD_SYSTEM):
        found.append(f"{RUN_SYSTEMD_SYSTEM} was created during the run")
    for root in _TMUX_ROOTS:
        pids = sorted(pid for pid, _, _ in tmux_processes(root))
        if pids:
            found.append(f"tmux processes {pids} of the test world {root}")
    found += systemd_user.leftovers()
    return found


@pytest.fixture(scope="session", autouse=True)
def host_left_as_found() -> Iterator[None]:
    """Set up first, torn down last: fails the run when something started by it is still there."""
    before = HostState()
    yield
    left = leftovers(before)
    if left:
        pytest.fail("the test run left the host changed: " + "; ".join(left), pytrace=False)


@pytest.fixture
def tmux_env() -> Iterator[TmuxEnv]:
    # Short on purpose: sun_path allows 107 bytes and tests make long names.
    root = tempfile.mkdtemp(prefix="ft", dir="/tmp")
    os.chmod(root, 0o755)
    sockdir = os.path.join(root, f"tmux-{os.geteuid()}")
    os.mkdir(sockdir, 0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env.update(
        TMUX_TMPDIR=root,
        SHELL="/bin/sh",
        XDG_CONFIG_HOME=os.path.join(root, "config"),
        XDG_STATE_HOME=os.path.join(root, "state"),
        FORGE_TMUX_STATE_DIR=os.path.join(root, "state", "forge-tmux"),
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    for var in ("JOURNAL_STREAM", "FORGE_TMUX_TELEGRAM_TOKEN", "FORGE_TMUX_TELEGRAM_CHAT_ID"):
        env.pop(var, None)
    world = TmuxEnv(root, sockdir, env)
    _TMUX_ROOTS.append(root)
    if _GUARD is not None:
        _GUARD.tmux_world(root)
    try:
        yield world
    finally:
        for pid in world.pids:
            _kill(pid)
        # Servers started by the code under test (spawn) are found by their socket directory.
        _kill_servers_under(root)
        with contextlib.suppress(OSError):
            shutil.rmtree(root)


def tmux_server_pids(env: TmuxEnv) -> set[int]:
    """Pids of the tmux processes started in this test's TMUX_TMPDIR."""
    return {pid for pid, _, _ in tmux_processes(env.root)}


def _kill_servers_under(root: str) -> None:
    """Kill tmux processes whose environment points at this test's TMUX_TMPDIR, by pid."""
    for pid, _, _ in tmux_processes(root):
        _kill(pid)


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    python: str | None = None,
    input: str | None = None,
) -> CliResult:
    """Run `python -m forge_tmux ARGS` (the real entry point) and capture everything."""
    proc = subprocess.run(
        [python or sys.executable, "-m", "forge_tmux", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        input=input,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(tmux_env: TmuxEnv) -> Callable[..., CliResult]:
    """`cli("sweep", "--json")` with the private TMUX_TMPDIR environment."""

    def call(*args: str, **kwargs: Any) -> CliResult:
        kwargs.setdefault("env", tmux_env.env)
        return run_cli(*args, **kwargs)

    return call


def as_user(uid: int, fn: Callable[[], Any]) -> Any:
    """Run `fn` in a forked child with uid/gid `uid` and return its JSON-able result.

    The interpreter lives under /root (mode 0700) on these machines, so modules the code imports
    lazily are imported here first: after the uid switch they could not be read."""
    for module in ("resource", "secrets", "select", "socket", "struct", "fcntl"):
        importlib.import_module(module)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            data = json.dumps(fn()).encode()
            os.write(write_end, data)
        except BaseException as exc:
            os.write(write_end, json.dumps({"child_error": repr(exc)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b"null")
