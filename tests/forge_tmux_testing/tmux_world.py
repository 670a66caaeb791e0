"""A private tmux world per test: its own short `TMUX_TMPDIR`, the servers started in it recorded
by pid and killed by pid, and the ways a stale socket comes about. Nothing here touches a socket or
a server the test did not create."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from forge_tmux_testing.hostguard import tmux_processes
from forge_tmux_testing.processes import kill, pid_alive, wait_for

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
# A tmux that lies about new-session in the ways the spawn harness must survive (see the script).
FAKE_TMUX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_tmux")


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


def new_world() -> TmuxEnv:
    """A fresh world whose environment points every forge-tmux path inside it."""
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
    return TmuxEnv(root, sockdir, env)


def end_world(world: TmuxEnv) -> None:
    """Kill the world's servers by pid and remove its directory."""
    for pid in world.pids:
        kill(pid)
    # Servers started by the code under test (spawn) are found by their socket directory.
    for pid in tmux_server_pids(world):
        kill(pid)
    with contextlib.suppress(OSError):
        shutil.rmtree(world.root)


def tmux_server_pids(env: TmuxEnv) -> set[int]:
    """Pids of the tmux processes started in this test's TMUX_TMPDIR."""
    return {pid for pid, _, _ in tmux_processes(env.root)}


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


def session_view(env: TmuxEnv, socket: str, session: str = "probe") -> tuple[str, str]:
    """(the pane's text, the server's global environment) of a session that ran `env`."""
    pane = env.tmux("-L", socket, "capture-pane", "-p", "-J", "-S", "-", "-t", f"={session}:")
    global_env = env.tmux("-L", socket, "show-environment", "-g")
    assert pane.returncode == 0, pane.stderr
    assert global_env.returncode == 0, global_env.stderr
    return pane.stdout, global_env.stdout


def fake_tmux_env(env: TmuxEnv, mode: str) -> tuple[dict[str, str], str]:
    """The test environment with the lying tmux first on PATH; returns it and the counter file."""
    bindir = os.path.join(env.root, "bin")
    os.makedirs(bindir, exist_ok=True)
    os.symlink(FAKE_TMUX, os.path.join(bindir, "tmux"))
    count = os.path.join(env.root, "new-session-count")
    assert TMUX is not None
    fake = {
        **env.env,
        "PATH": f"{bindir}:{env.env['PATH']}",
        "FAKE_TMUX_REAL": TMUX,
        "FAKE_TMUX_MODE": mode,
        "FAKE_TMUX_COUNT": count,
        "FAKE_TMUX_PYTHON": sys.executable,
    }
    return fake, count
