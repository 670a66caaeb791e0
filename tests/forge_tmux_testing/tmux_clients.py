"""Stand-ins for tmux clients: a process named like tmux (the sweep looks only into those) that
does what tmux's client_get_lock() does with a lock file, paused where the races are."""

from __future__ import annotations

import os
import subprocess
import sys

# The client half of tmux 3.3a's client_get_lock(), paused between open() and flock() until it
# reads a line on stdin. It reports whether the lock it ends up with is real or a ghost.
MODEL_CLIENT = r"""
import fcntl, os, sys
path = sys.argv[1]
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
print("opened", flush=True)
sys.stdin.readline()
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    fcntl.flock(fd, fcntl.LOCK_EX)   # tmux waits, then closes and starts over by path
    print("waited", flush=True)
    sys.exit(0)
try:
    same = os.stat(path).st_ino == os.fstat(fd).st_ino
except FileNotFoundError:
    same = False
print("locked" if same else "ghost", flush=True)
"""


def tmux_named_python(directory: str, name: str = "tmux") -> str:
    """A python executable named like a tmux client: the kernel names a process after its
    executable file, and the sweep looks only into processes that may be tmux clients."""
    path = os.path.join(directory, name)
    if not os.path.lexists(path):
        os.symlink(sys.executable, path)
    return path


def start_model_client(lock_path: str, name: str = "tmux") -> subprocess.Popen[str]:
    # Beside the test's socket directory: tmux_env's root, removed with it.
    as_tmux = tmux_named_python(os.path.dirname(os.path.dirname(lock_path)), name)
    client = subprocess.Popen(
        [as_tmux, "-c", MODEL_CLIENT, lock_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdout is not None
    assert client.stdout.readline().strip() == "opened"
    return client
