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


LockTable = tuple[set[FileKey], set[tuple[int, FileKey]]]


def lock_table() -> LockTable | None:
    """From /proc/locks: the files someone holds a flock on, and (pid, file) of blocked
    waiters. None when /proc/locks cannot be read (a sandbox with ProcSubset=pid)."""
    try:
        with open("/proc/locks") as fh:
            return parse_locks(fh.read())
    except OSError:
        return None


def parse_locks(text: str) -> LockTable:
    """Parse /proc/locks lines such as `1: FLOCK  ADVISORY  WRITE 7864 fe:00:2146372 0 EOF` and
    the blocked waiter below it, `1: -> FLOCK  ADVISORY  WRITE 7913 fe:00:2146372 0 EOF`."""
    held: set[FileKey] = set()
    waiting: set[tuple[int, FileKey]] = set()
    for line in text.splitlines():
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
            # Another user's process cannot open a lock file in our 0700 directory; a tmux
            # client of our own that we may not inspect (undumpable, other gid) could have.
            blind = blind or _tmux_client_of(pid, euid)
            continue
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
            except PermissionError:
                # The fd list was readable but not the links: the kernel's ptrace check failed
                # (our uid, another gid). If it is a tmux client it may hold our lock file.
                blind = blind or _tmux_client_of(pid, euid)
                break
            except OSError:
                continue  # closed meanwhile
            key = (st.st_dev, st.st_ino)
            if key in targets:
                found.add((pid, key))
    return found, blind


def _tmux_client_of(pid: int, uid: int) -> bool:
    """Whether the process is a tmux client that could open our lock files: named tmux (only a
    tmux client takes tmux's lock) and running as `uid` (real, effective, saved or fs) or as
    root. /proc/PID/status is readable even where the process's fds are not."""
    name, uids = "", []
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Name:"):
                    name = line.split(None, 1)[1].strip() if len(line.split()) > 1 else ""
                elif line.startswith("Uid:"):
                    uids = line.split()[1:]
                    break
    except OSError:
        return False
    return name.startswith("tmux") and (str(uid) in uids or "0" in uids)


class HeldLocks:
    """Lock fds whose file names we unlinked while holding their flock; see the module doc."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def add(self, fd: int) -> None:
        self.fds.append(fd)

    def release(self, deadline: float) -> int:
        """Wait (until the monotonic `deadline` at the latest) until no other process can
        still take one of these locks without waiting first, then close them all. Returns how
        many openers were still not waiting when time ran out (0 is the normal case).

        A clean scan is confirmed by a second one a moment later: a client inside its open()
        call when we unlinked the name shows its fd only once that call returns. When we cannot
        see (blind, or no /proc/locks), we hold until the deadline: a client in the gap calls
        flock() within microseconds of being scheduled, finds the lock held and waits, which is
        safe; only one stalled for longer than the deadline is not."""
        if not self.fds:
            return 0
        try:
            targets = {(st.st_dev, st.st_ino) for st in map(os.fstat, self.fds)}
            clean_scans = 0
            while True:
                pending, blind = openers(targets)
                if pending:
                    table = lock_table()
                    if table is None:
                        blind = True
                    else:
                        pending -= table[1]
                clean_scans = clean_scans + 1 if not pending and not blind else 0
                if clean_scans >= 2:
                    return 0
                if time.monotonic() >= deadline:
                    return len(pending)
                time.sleep(0.002)
        finally:
            for fd in self.fds:
                os.close(fd)
            self.fds.clear()
