"""Running one external program: the part the doors (`tmux.py`, `systemd.py`) share.

A door builds the argument vector (never a shell string) and the environment; this module runs it
with stdin from /dev/null, collects stdout and stderr, and enforces a timeout that kills (SIGKILL:
a tmux client blocked on a full backlog ignores SIGTERM). A non-zero exit is data (`Ran`), never
an exception; a program that cannot be started raises the OSError of exec, which each door turns
into its own "not installed" error.

Why not `subprocess.run`: with a timeout its wait polls `waitpid(WNOHANG)` with sleeps, and
`health` asks a hundred servers in a row. Here the pipes and a pidfd are waited on by the kernel,
and a program is looked up on PATH once per process and PATH value, not once per call.
"""

from __future__ import annotations

import contextlib
import locale
import os
import select
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

_CHUNK = 65536
_FOUND: dict[tuple[str, str | None], str] = {}  # (name, PATH) -> path, see which()


# The records here and in the modules `health` imports are NamedTuples, not dataclasses:
# `dataclasses` (with `inspect`) and a dataclass per record cost the health timer ~15 ms a run.
class Ran(NamedTuple):
    """What one run of a program gave: the record every door returns."""

    argv: tuple[str, ...]
    returncode: int | None  # None when the call was killed for exceeding its timeout
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def why(self) -> str:
        """A one-line reason for a failure, for messages."""
        if self.timed_out:
            return f"{self.argv[0]} timed out"
        text = " ".join((self.stderr or self.stdout).split())
        return text or f"exit status {self.returncode}"


def which(name: str) -> str | None:
    """`shutil.which(name)`, remembered per PATH value. A miss is not remembered (a program
    installed later is found); a remembered program that was removed fails at exec as before."""
    key = (name, os.environ.get("PATH"))
    found = _FOUND.get(key)
    if found is None:
        found = shutil.which(name, path=key[1])
        if found is not None:
            _FOUND[key] = found
    return found


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    executable: str | None = None,
) -> Ran:
    """Run `argv` (`executable` is the file to exec when argv[0] is only its name) and wait at
    most `timeout` seconds for it to exit and close its output; then it is killed."""
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        argv,
        executable=executable,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None  # noqa: S101 (PIPE above)
        out, err = proc.stdout.fileno(), proc.stderr.fileno()
        chunks: dict[int, list[bytes]] = {out: [], err: []}
        exited = _read_until_closed(chunks, deadline) and _wait_for_exit(proc, deadline)
        if not exited:
            proc.kill()  # SIGKILL; wait() reaps it at once
        proc.wait()
        returncode = proc.returncode if exited else None
        return Ran(tuple(argv), returncode, _text(chunks[out]), _text(chunks[err]))


def _read_until_closed(chunks: dict[int, list[bytes]], deadline: float) -> bool:
    """Append what is written to each fd of `chunks` until all are closed (True) or the
    deadline comes (False)."""
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    open_fds = len(chunks)
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        for fd, _ in poller.poll(left * 1000):
            data = os.read(fd, _CHUNK)
            if data:
                chunks[fd].append(data)
            else:
                poller.unregister(fd)
                open_fds -= 1
    return True


def _wait_for_exit(proc: subprocess.Popen[bytes], deadline: float) -> bool:
    """Whether the program exits before the deadline (its output is closed, so it usually has)."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (old kernel, seccomp): subprocess's polling
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        with contextlib.suppress(OSError):
            os.close(pidfd)
    return bool(ready)


def _text(chunks: list[bytes]) -> str:
    """Decoded as `subprocess.run(text=True, errors="replace")` decodes (newlines translated)."""
    data = b"".join(chunks).decode(locale.getpreferredencoding(False), "replace")
    return data.replace("\r\n", "\n").replace("\r", "\n")
