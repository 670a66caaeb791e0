"""A watchdog that undoes what a test session left on the host, however the session ends.

The session starts `python hostguard.py` as a child in a session of its own (a Ctrl-C in the
terminal does not reach it) and keeps the write end of a pipe to its stdin. Through that pipe it
registers what it creates: a private tmux world (`TMUX_TMPDIR` root) or a temporary tree. The pipe
closes when the test process exits in any way, normally, on SIGINT or SIGTERM, or killed with
SIGKILL; the kernel closes it, so no finaliser of ours has to run. On end of file the watchdog
kills the tmux processes of each registered world, by pid, found by their environment
(`TMUX_TMPDIR=root`, which only our tests set to that freshly made directory), and removes the
registered trees. It touches nothing it was not told about, so a concurrent run in another tree
keeps everything it made. After a normal run the fixtures have already cleaned up and the
watchdog finds nothing to do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time


def tmux_processes(root: str) -> list[tuple[int, str, list[bytes]]]:
    """(pid, comm, argv) of tmux processes whose environment has TMUX_TMPDIR=root: the
    processes of one test's private tmux world, found without trusting their command line."""
    found = []
    marker = f"TMUX_TMPDIR={root}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as fh:
                comm = fh.read().strip()
            if not comm.startswith("tmux"):
                continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if marker not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        found.append((int(entry), comm, argv))
    return found


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)  # a SIGSTOP-ed server must be able to die
        os.kill(pid, signal.SIGKILL)


def undo(kind: str, path: str) -> None:
    if kind == "tmux":
        # A server may fork a new one while we kill (spawn's retry): repeat until none is left.
        deadline = time.monotonic() + 10
        while (found := tmux_processes(path)) and time.monotonic() < deadline:
            for pid, _, _ in found:
                kill(pid)
            time.sleep(0.05)
    if kind in ("tmux", "tree") and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)


class Guard:
    """The test session's end of the pipe."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            text=True,
            start_new_session=True,
            cwd="/",
        )

    def _register(self, kind: str, path: str) -> None:
        assert self.proc.stdin is not None
        assert "\n" not in path
        self.proc.stdin.write(f"{kind}\t{path}\n")
        self.proc.stdin.flush()

    def tmux_world(self, root: str) -> None:
        """Kill the tmux processes of this TMUX_TMPDIR and remove it when the session ends."""
        self._register("tmux", root)

    def tree(self, path: str) -> None:
        """Remove this directory when the session ends."""
        self._register("tree", path)

    def close(self, timeout: float = 60) -> None:
        """End the session's registrations; the watchdog cleans up and exits."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=timeout)


def main() -> None:
    # Signals meant for the test run are not for us; only end of file ends the watch.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    registered = []
    for line in sys.stdin:
        kind, _, path = line.rstrip("\n").partition("\t")
        registered.append((kind, path))
    for kind, path in registered:
        undo(kind, path)


if __name__ == "__main__":
    main()
