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
2. find every other process that may be a tmux client and still has that inode open
   (`/proc/PID/comm`, then `/proc/PID/fd` of those only);
3. keep holding the lock until each of them is a blocked waiter on it (`/proc/locks`, the "->"
   lines) or has closed it, then release.

Only a tmux client takes tmux's lock, and a tmux client is named after its executable (`tmux`,
`tmux3.4`) until it renames itself `<argv0>: client`; a process named otherwise is not looked
into, which keeps step 2 at one small read per process on a busy host (see
`could_be_tmux_client`). A confirming pass looks again only at the first pass's possible clients:
once the names are gone, no other process can open these files any more.

Step 3 is bounded by the sweep's `--timeout`. Only processes whose fds we may read are seen
directly: the user's own, or everyone's for root. A process whose fds we may not read (root's, or
one of ours that is undumpable or runs with another gid) is a *suspect*: we hold the lock for the
whole `--timeout` for it, unless facts that need no privilege prove it cannot be in the gap on one
of the files we retire. Each exclusion, and why it is safe:

- Gone, or a blocked waiter on one of our files in `/proc/locks`: nothing left to wait for.
- Its name (/proc/PID/comm) is not a tmux client's (above): only a tmux client takes tmux's lock
  (a process that is not tmux and opens tmux's lock file is not one tmux's exclusion can protect
  anyway; another sweep in the gap only re-checks an inode that is gone, and keeps it).
- None of its uids (real, effective, saved, fs) is ours or root's: it cannot open a file in our
  0700 directory at all.
- It is a tmux server (`tmux: server`, excluded by the name rule): a server never opens a lock
  file by path. It inherits the fd, already locked, from the client that forked it, and only
  unlinks and closes it.
- Its command line names its socket with `-S PATH` or `-L NAME` (parsed as tmux's own getopt does:
  options stop at the first non-option). tmux opens exactly `PATH.lock` (or `DIR/NAME.lock`), so
  the last component of the lock file it can be opening is `basename(PATH) + ".lock"`. Our retired
  file had one name only (st_nlink is 0 once we unlinked it), the one we unlinked: a different
  last component is a different file. For `-L`, DIR is `tmux-UID` for the client's *real* uid,
  which tmux checks is a directory owned by that uid: for another uid (root's own sockets) it is
  not our directory, whatever the name. For an absolute `-S PATH`, a directory of PATH that is not
  our directory is not ours either; nor is one below a real directory of another owner that we
  may not search (`/root/...`, `/tmp/tmux-0/...`): only its owner could make such a path lead to
  us, by a link of its own inside it, and an owner who attaches to our sockets names them by their
  real path (`tmux -S /tmp/tmux-1000/default`), which we do see.
- Its command line reads empty: it has no address space left (it is exiting), so it runs no more
  code of its own and will never call flock().
- No `-S`/`-L`: tmux takes the path from `$TMUX`, else `-L default`. Where /proc/PID/environ is
  readable, those rules apply to what it says; where it is not (root's clients), `$TMUX` may name
  our socket, so it stays a suspect.

These arguments assume what tmux itself assumes: nobody renames a lock file, and nobody swaps a
directory of a client's socket path for a symlink to ours between tmux's check and its open (only
the owner of those directories, or root, could). Every wait that still happens is reported with
the pid and the reason (`HeldLocks.waits`).
"""

import os
import stat
import time
from collections.abc import Iterable
from typing import NamedTuple

FileKey = tuple[int, int]  # (st_dev, st_ino)


def open_lock(dir_fd: int, lock_name: str, create: bool, exclusive: bool = False) -> int:
    """Open tmux's lock file `lock_name` in the directory as tmux does (0600), never through a
    symlink and never blocking (a fifo); the sweep and recover both take the lock this way.
    `exclusive` creates it or fails with FileExistsError."""
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    if create:
        flags |= os.O_CREAT
    if exclusive:
        flags |= os.O_CREAT | os.O_EXCL
    return os.open(lock_name, flags, 0o600, dir_fd=dir_fd)


def lock_is_ours(lock_fd: int, euid: int | None = None) -> bool:
    """Whether the opened lock file is a regular file owned by our effective uid."""
    st = os.fstat(lock_fd)
    return stat.S_ISREG(st.st_mode) and st.st_uid == (os.geteuid() if euid is None else euid)


def not_a_tmux_lock(st: os.stat_result) -> str:
    """Why a file named like a lock file is not tmux's lock, or "" when it may be: tmux creates
    its lock files empty (0600) and never writes to them."""
    if stat.S_ISLNK(st.st_mode):
        return "named like a lock file but a symlink, never followed"
    if not stat.S_ISREG(st.st_mode):
        return "named like a lock file but not a regular file"
    if st.st_uid != os.geteuid():
        return f"named like a lock file but owned by uid {st.st_uid}, not ours"
    if st.st_size:
        return f"named like a lock file but not empty ({st.st_size} bytes): not tmux's"
    return ""


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


class Scan(NamedTuple):
    """What one pass over /proc found: (pid, file) of every process with a retired file open,
    the suspects (pid -> why it could be in the gap) whose fds we could not read, and the pids
    that could be tmux clients at all (the only ones a confirming pass needs to look at again)."""

    found: set[tuple[int, FileKey]]
    suspects: dict[int, str]
    clients: tuple[int, ...] = ()


def could_be_tmux_client(name: str) -> bool:
    """Whether a process named `name` (/proc/PID/comm) may be a tmux client: named after its
    executable (`tmux`, `tmux3.4`) until tmux renames itself `<argv0>: client` (`tmux: client`).
    A tmux server (`tmux: server`) never opens a lock file by path; see the module doc."""
    return (name.startswith("tmux") and name != "tmux: server") or name.endswith(": client")


def openers(
    targets: set[FileKey],
    names: frozenset[str] | None = frozenset(),
    directory: FileKey | None = None,
    pids: Iterable[int] | None = None,
) -> Scan:
    """Every other process that may be a tmux client and has one of the (deleted) target files
    open, and the ones we could not inspect that may be in the gap on one of them. `names` are
    the targets' lock file names (None: a target still has a name somewhere, so no exclusion by
    name), `directory` the one they were in (for the exclusions of the module doc). `pids`
    limits the pass to those processes (a confirming pass); by default every process is read.

    Only processes that may be tmux clients are looked into: reading one small file per process
    (its name) instead of every fd of every process keeps this cheap on a busy host."""
    found: set[tuple[int, FileKey]] = set()
    suspects: dict[int, str] = {}
    me, euid = os.getpid(), os.geteuid()
    if pids is None:
        try:
            pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
        except OSError:
            return Scan(found, {0: "/proc cannot be listed"})
    gap = _Gap(euid, names, directory)
    clients: list[int] = []
    for pid in pids:
        if pid == me or not could_be_tmux_client(_comm(pid)):
            continue
        clients.append(pid)
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            _suspect(suspects, pid, gap)
            continue
        except OSError:
            continue  # gone
        for fd in fds:
            link = f"{fd_dir}/{fd}"
            try:
                # Retired lock files are unlinked: their fds read "... (deleted)". Checking the
                # link text first saves a stat of every socket and pipe of the process.
                if not os.readlink(link).endswith(".lock (deleted)"):
                    continue
                st = os.stat(link)
            except PermissionError:
                # The fd list was readable but not the links: the kernel's ptrace check failed
                # (our uid, another gid).
                _suspect(suspects, pid, gap)
                break
            except OSError:
                continue  # closed meanwhile
            key = (st.st_dev, st.st_ino)
            if key in targets:
                found.add((pid, key))
    return Scan(found, suspects, tuple(clients))


def _suspect(suspects: dict[int, str], pid: int, gap: "_Gap") -> None:
    reason = gap.reason(pid)
    if reason:
        suspects[pid] = reason


# tmux 3.3a's getopt string, "2c:CDdf:lL:NqS:T:uUvV": options with an argument, and flags.
_TMUX_ARG_OPTIONS = frozenset("cfLST")
_TMUX_FLAGS = frozenset("2CDdlNquUvV")


def tmux_socket_option(argv: list[str]) -> tuple[str, str] | None:
    """("S", path), ("L", name) or ("", "") for neither, as tmux's getopt reads `argv` (BSD
    getopt: options end at the first non-option or `--`; a later -S/-L wins, -S over -L). None
    when the command line is not one we can read with certainty (an unknown option)."""
    path: str | None = None
    label: str | None = None
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            opt = arg[j]
            if opt in _TMUX_ARG_OPTIONS:
                value = arg[j + 1 :]
                if not value:
                    i += 1
                    if i >= len(argv):
                        return None
                    value = argv[i]
                if opt == "S":
                    path = value
                elif opt == "L":
                    label = value
                break
            if opt not in _TMUX_FLAGS:
                return None
            j += 1
        i += 1
    if path is not None:
        return "S", path
    if label is not None:
        return "L", label
    return "", ""


class _Gap:
    """Decides whether a process whose fds we cannot read could be in the gap between opening
    one of our lock files and locking it; see the module doc for each rule."""

    __slots__ = ("directory", "euid", "names")

    def __init__(self, euid: int, names: frozenset[str] | None, directory: FileKey | None) -> None:
        self.euid = euid
        self.names = names
        self.directory = directory

    def reason(self, pid: int) -> str:
        """Why `pid` must be waited for; "" when it cannot be in the gap."""
        name = _comm(pid)
        if not could_be_tmux_client(name):
            return ""  # also when gone
        uids = _uids(pid)
        if not uids or not ({str(self.euid), "0"} & set(uids)):
            return ""
        who = f"tmux process {name!r} of uid {uids[0]}, fds unreadable"
        if self.names is None:
            return f"{who}, and a retired lock file has another name left"
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            return f"{who}, command line unreadable"
        if not cmdline:
            return ""  # no address space left: it is exiting and runs no more code of its own
        argv = [os.fsdecode(part) for part in cmdline.split(b"\0")[:-1]]
        option = tmux_socket_option(argv)
        if option is None:
            return f"{who}, command line not understood: {' '.join(argv)[:80]!r}"
        kind, value = option
        if not kind:
            env = _read_tmux_env(pid)
            if env is None:
                return f"{who}, no -S/-L: its socket may come from $TMUX, which we cannot read"
            kind, value = ("S", env) if env else ("L", "default")
        if kind == "L" and uids[0] != str(self.euid):
            return ""  # its directory is tmux-<its real uid>, owned by that uid: not ours
        if os.path.basename(value) + ".lock" not in self.names:
            return ""
        if kind == "S" and os.path.isabs(value) and not self._may_lead_here(value):
            return ""
        return f"{who}, socket {value!r} may be one of ours"

    def _may_lead_here(self, path: str) -> bool:
        """Whether the directory of the absolute socket `path` may be ours: False when it is
        another directory, or lies below another owner's directory that we may not search."""
        directory = os.path.dirname(path)
        try:
            st = os.stat(directory)
        except PermissionError:
            return not self._closed_to_us(directory)
        except OSError:
            return True
        return self.directory is None or (st.st_dev, st.st_ino) == self.directory

    def _closed_to_us(self, directory: str) -> bool:
        """Whether a real directory of another owner that we may not search lies on the way."""
        parts = directory.strip("/").split("/")
        parent = "/"
        for part in parts:
            here = os.path.join(parent, part)
            try:
                st = os.lstat(here)
            except PermissionError:
                try:
                    owner = os.lstat(parent).st_uid
                except OSError:
                    return False
                return owner != self.euid
            except OSError:
                return False
            if not stat.S_ISDIR(st.st_mode):
                return False  # a symlink on the way: it may lead anywhere
            parent = here
        return False


def _comm(pid: int) -> str:
    """The process's name ("" when it is gone): the cheapest file in /proc/PID, readable even
    where the process's fds are not."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            return os.fsdecode(fh.read().rstrip(b"\n"))
    except OSError:
        return ""


def _uids(pid: int) -> list[str]:
    """[real, effective, saved, fs] uid from /proc/PID/status; [] when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    return line.split()[1:]
    except OSError:
        pass
    return []


def _read_tmux_env(pid: int) -> str | None:
    """The socket path `$TMUX` gives the process ("" when unset), None when unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    for entry in raw.split(b"\0"):
        if entry.startswith(b"TMUX="):
            value = os.fsdecode(entry[5:])
            # tmux ignores an empty $TMUX and one that starts with ","; the path ends at ",".
            return "" if not value or value.startswith(",") else value.split(",", 1)[0]
    return ""


class HeldLocks:
    """Lock fds whose file names we unlinked while holding their flock; see the module doc."""

    def __init__(self, directory: FileKey | None = None) -> None:
        # Open until released, so an fd number here is never reused meanwhile: one lock file
        # retired under several names (the sweep's batch lock) is held once.
        self.fds: dict[int, None] = {}
        self.names: set[str] = set()
        self.directory = directory
        # One line per process that made a release wait (pid and reason), for --verbose.
        self.waits: list[str] = []

    def add(self, fd: int, name: str) -> None:
        self.fds[fd] = None
        self.names.add(name)

    def holds(self, fd: int) -> bool:
        return fd in self.fds

    def release(self, deadline: float) -> int:
        """Wait (until the monotonic `deadline` at the latest) until no other process can
        still take one of these locks without waiting first, then close them all. Returns how
        many openers were still not waiting when time ran out (0 is the normal case).

        A clean scan is confirmed by a second one a moment later: a client inside its open()
        call when we unlinked the name shows its fd only once that call returns. For a suspect
        (see the module doc) or without /proc/locks, we hold until the deadline: a client in the
        gap calls flock() within microseconds of being scheduled, finds the lock held and waits,
        which is safe; only one stalled for longer than the deadline is not."""
        if not self.fds:
            return 0
        try:
            stats = [os.fstat(fd) for fd in self.fds]
            targets = {(st.st_dev, st.st_ino) for st in stats}
            # A file with a name left elsewhere (a hard link) defeats the exclusions by name.
            names = frozenset(self.names) if all(st.st_nlink == 0 for st in stats) else None
            clean_scans = 0
            started = time.monotonic()
            why: dict[int, str] = {}
            # A process that is not among the first pass's possible clients cannot be in the gap
            # later: the names are gone, so it can no longer open these files.
            clients: tuple[int, ...] | None = None
            while True:
                pending, suspects, found_clients = openers(targets, names, self.directory, clients)
                clients = found_clients
                if pending or suspects:
                    table = lock_table()
                    if table is None:
                        suspects[0] = "/proc/locks cannot be read"
                    else:
                        pending -= table[1]
                        waiting = {pid for pid, key in table[1] if key in targets}
                        suspects = {p: r for p, r in suspects.items() if p not in waiting}
                for pid, _ in pending:
                    why.setdefault(pid, "has a retired lock file open and is not waiting on it")
                for pid, reason in suspects.items():
                    why.setdefault(pid, reason)
                clean_scans = clean_scans + 1 if not pending and not suspects else 0
                if clean_scans >= 2:
                    self._note_waits(why, started, 0)
                    return 0
                if time.monotonic() >= deadline:
                    self._note_waits(why, started, len(pending))
                    return len(pending)
                time.sleep(0.002)
        finally:
            for fd in self.fds:
                os.close(fd)
            self.fds.clear()
            self.names.clear()

    def _note_waits(self, why: dict[int, str], started: float, left: int) -> None:
        waited_ms = (time.monotonic() - started) * 1000
        for pid, reason in sorted(why.items()):
            self.waits.append(
                f"held retired lock file(s) {waited_ms:.0f} ms for pid {pid}: {reason}"
                + (" (released at --timeout)" if left else "")
            )
