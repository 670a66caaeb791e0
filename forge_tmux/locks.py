"""Retiring tmux lock files without letting a tmux client lock a ghost.

tmux's client opens `<socket>.lock` and then calls `flock(LOCK_NB)`. If the lock is held, it waits
in a blocking `flock`, closes the file, and starts over from `connect()`, opening the lock file
again by path. That restart is what makes removing a lock file safe for a client that was
*waiting*. It is not safe for a client caught between its `open()` and its `flock()`: if the sweep
unlinks the name and releases in that gap, the client's `flock` succeeds on an inode nobody else
can reach, and it starts a server that excludes no one. A second client can then start a second
server, and one of them loses its socket. tmux's own server only removes the file while it
listens, so a late client merely connects. We remove it where no server is, so:

1. unlink the lock file's name while still holding its flock (from then on no new process can
   open it);
2. find every other process that still has that inode open (`/proc/PID/fd`);
3. keep holding the lock until each of them is a blocked waiter on it (`/proc/locks`, the "->"
   lines) or has closed it, then release.

Step 3 is bounded by the sweep's `--timeout`. Only processes whose fds we may read are seen: the
user's own, or everyone's for root, which covers every tmux client that can open a lock file in a
0700 directory.
"""

import contextlib
import os
import time

FileKey = tuple[int, int]  # (st_dev, st_ino)


def _parse_dev(field: str) -> FileKey | None:
    """`fe:00:2146372` (hex major, hex minor, inode) from a /proc/locks line."""
    try:
        major, minor, inode = field.split(":")
        return os.makedev(int(major, 16), int(minor, 16)), int(inode)
    except ValueError:
        return None


def lock_table() -> tuple[set[FileKey], set[tuple[int, FileKey]]] | None:
    """From /proc/locks: the files someone holds a lock on, and (pid, file) of blocked waiters.
    None when /proc/locks cannot be read."""
    held: set[FileKey] = set()
    waiting: set[tuple[int, FileKey]] = set()
    try:
        with open("/proc/locks") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        blocked = len(parts) > 1 and parts[1] == "->"
        fields = parts[2:] if blocked else parts[1:]
        # FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END
        if len(fields) < 5 or fields[0] != "FLOCK":
            continue
        key = _parse_dev(fields[4])
        if key is None or not fields[3].isdigit():
            continue
        if blocked:
            waiting.add((int(fields[3]), key))
        else:
            held.add(key)
    return held, waiting


def openers(targets: set[FileKey]) -> tuple[set[tuple[int, FileKey]], bool]:
    """(pid, file) for every other process that has one of the (deleted) target files open, and
    whether we were blind: a process of our own uid whose fds we may not read (a sandbox with a
    private user namespace, say), or no /proc at all."""
    found: set[tuple[int, FileKey]] = set()
    me, euid = os.getpid(), os.geteuid()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return found, True
    blind = False
    for pid in pids:
        if pid == me:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            with contextlib.suppress(OSError):
                blind = blind or os.stat(f"/proc/{pid}").st_uid == euid
            continue  # another user's process: it cannot open a lock file in our 0700 dir
        except OSError:
            continue  # gone
        for fd in fds:
            link = f"{fd_dir}/{fd}"
            try:
                # Retired lock files are unlinked: their fds read "... (deleted)". Checking the
                # link text first saves a stat of every socket and pipe on the machine.
                if not os.readlink(link).endswith(".lock (deleted)"):
                    continue
                st = os.stat(link)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in targets:
                found.add((pid, key))
    return found, blind


class HeldLocks:
    """Lock fds whose file names we unlinked while holding their flock; see the module doc."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def add(self, fd: int) -> None:
        self.fds.append(fd)

    def release(self, timeout: float) -> int:
        """Wait (at most `timeout` seconds) until no other process can still take one of these
        locks without waiting first, then close them all. Returns how many openers were still
        not waiting when time ran out (0 is the normal case).

        When we cannot see (blind, or no /proc/locks), we hold for the whole timeout: a client in
        the gap calls flock() within microseconds of being scheduled, finds the lock held and
        waits, which is safe; only one stalled for longer than the timeout is not."""
        if not self.fds:
            return 0
        try:
            targets = {(st.st_dev, st.st_ino) for st in map(os.fstat, self.fds)}
            deadline = time.monotonic() + timeout
            while True:
                pending, blind = openers(targets)
                if pending:
                    table = lock_table()
                    if table is None:
                        blind = True
                    else:
                        pending -= table[1]
                if not pending and not blind:
                    return 0
                if time.monotonic() >= deadline:
                    return len(pending)
                time.sleep(0.002)
        finally:
            for fd in self.fds:
                os.close(fd)
            self.fds.clear()
