"""The janitor: remove stale tmux sockets, provably nothing else, race-free against tmux.

Safety rules, in the order they are applied:
- A directory is acted in only if it passes the socket-directory rule (forge_tmux.sockdir: a real
  directory, opened with O_NOFOLLOW, owned by us, no group or other permission bits); otherwise
  nothing in it is touched.
- Every entry is judged relative to that directory descriptor, never through a path that a
  symlink could redirect; only sockets owned by the effective uid are candidates.
- A candidate is removed only under tmux's own lock `<socket>.lock` (taken without blocking: a
  held lock means a client is starting a server right now) and only after a re-check under the
  lock: same inode, still a socket, still ours, connect still refused. A tmux client that wants
  the path waits on that same lock and re-tries connect() after it, so it cannot be overtaken.
- Each candidate is then moved to a private name (rename() is atomic) and checked there: same
  inode, and no socket bound to it (sock_diag: a server between bind() and listen() is refused
  like a stale file), else connect still refused. A server that binds the real name without the
  lock (SIGUSR1) is never touched; a moved file that turns out live is put back with link().
- Lock files are removed only while we hold them and only when no socket is beside them, and
  the lock is released only once no tmux client can take it without waiting first
  (forge_tmux.locks explains why); so the sweep leaves no debris behind.
- A file named `*.lock` is tmux's only if it is an empty regular file of ours: tmux creates its
  lock files empty and never writes to them. Anything else (a pidfile, notes, a fifo, another
  user's file) is never deleted and is reported as skipped; a `*.lock` that is not a regular file
  is not even opened (opening a device or a fifo can have effects of its own).
- A stale socket we could not remove (the lock file cannot be created: an immutable directory, a
  read-only mount) is a failure of the run (exit 1), never a silent "unknown".
"""

import contextlib
import fcntl
import os
import stat
import time
from collections import deque
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import NamedTuple

from forge_tmux.locks import (
    FileKey,
    HeldLocks,
    lock_is_ours,
    lock_table,
    not_a_tmux_lock,
    open_lock,
)
from forge_tmux.paths import LOCK_SUFFIX, display
from forge_tmux.probe import (
    Bindings,
    Budget,
    Connector,
    Probe,
    SocketState,
    bound_files,
    classify,
    connect_path,
    unix_bindings,
)
from forge_tmux.sockdir import DirResult, DirStatus, open_socket_dir

# DirResult and DirStatus (from sockdir) are part of SweepResult's interface: exported here too.
__all__ = [
    "WOULD_REMOVE",
    "Code",
    "DirResult",
    "DirStatus",
    "SocketResult",
    "SweepResult",
    "log_events",
    "render_human",
    "sweep",
]


class Code(StrEnum):
    """What became of an entry, for programs: `reason` is the same for people, and its wording
    may change (the JSON carries both)."""

    KEPT = "kept"  # anything not listed below: the reason says why
    PROTECTED = "protected"  # stale, but named in protected_sockets
    LOCK_HELD = "lock_held"  # a tmux client holds the lock: it is starting a server
    WOULD_REMOVE = "would_remove"  # --dry-run: a real run would remove it
    REMOVED = "removed"


class SocketResult(NamedTuple):
    path: str
    state: SocketState
    removed: bool
    reason: str
    failed: bool = False  # a stale socket we meant to remove and could not
    code: Code = Code.KEPT


class SweepResult:
    """What a sweep found and did. A plain class: it is filled in as the sweep goes (and a
    dataclass would cost start-up time on the hot path, see config.py)."""

    __slots__ = (
        "dirs",
        "duration_ms",
        "lock_waits",
        "lock_waits_timed_out",
        "locks_removed",
        "sockets",
    )

    def __init__(self) -> None:
        self.dirs: list[DirResult] = []
        self.sockets: list[SocketResult] = []
        self.locks_removed = 0
        # Processes that still had a retired lock file open, not waiting on it, at --timeout.
        self.lock_waits_timed_out = 0
        # Why a release of retired lock files had to wait, one line per process (--verbose).
        self.lock_waits: list[str] = []
        self.duration_ms = 0.0

    @property
    def removed(self) -> int:
        return sum(1 for s in self.sockets if s.removed)

    @property
    def ok(self) -> bool:
        """False when a directory was refused or a stale socket could not be removed."""
        return not any(d.status is DirStatus.REFUSED for d in self.dirs) and not any(
            s.failed for s in self.sockets
        )

    def count(self, state: SocketState) -> int:
        return sum(1 for s in self.sockets if s.state is state)

    def summary(self) -> dict[str, int]:
        return {
            "live": self.count(SocketState.LIVE),
            "stale": self.count(SocketState.STALE),
            "removed": self.removed,
            "unknown": self.count(SocketState.UNKNOWN),
            "skipped": self.count(SocketState.SKIPPED),
            "locks_removed": self.locks_removed,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "dirs": [
                {"path": display(d.path), "status": d.status.value, "reason": d.reason}
                for d in self.dirs
            ],
            "sockets": [
                {
                    "path": display(s.path),
                    "state": s.state.value,
                    "removed": s.removed,
                    "reason": s.reason,
                    "code": s.code.value,
                }
                for s in self.sockets
            ],
            "summary": self.summary(),
            "duration_ms": round(self.duration_ms, 3),
        }


def sweep(
    dirs: Iterable[str],
    *,
    dry_run: bool = False,
    timeout: float = 2.0,
    protected: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> SweepResult:
    """Sweep every directory; `protected` socket names are reported, never removed. `only`:
    judge just these socket names (and their lock files), leave every other entry unseen (the
    stale file `kill` leaves behind, and not its neighbours).

    `timeout` bounds the waits: the probes of the whole run share one budget, and all releases of
    retired lock files together wait at most that long for tmux clients to reach their locks.
    """
    started = time.perf_counter()
    result = SweepResult()
    run = _Run(Budget(timeout), timeout, dry_run, frozenset(protected))
    run.only = None if only is None else frozenset(only)
    seen: set[str] = set()
    try:
        for path in dirs:
            real = os.path.abspath(path)
            if real in seen:
                continue
            seen.add(real)
            fd, dir_result = open_socket_dir(real)
            if fd is None:
                result.dirs.append(dir_result)
                continue
            try:
                dir_result = _sweep_dir(fd, real, result, run)
            finally:
                os.close(fd)
            result.dirs.append(dir_result)
    finally:
        run.connector.close()
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result


class _Run:
    """The settings of one sweep, and its one deadline for waiting on tmux clients."""

    __slots__ = (
        "_release_by",
        "budget",
        "connector",
        "dry_run",
        "euid",
        "only",
        "protected",
        "timeout",
    )

    def __init__(
        self, budget: Budget, timeout: float, dry_run: bool, protected: frozenset[str]
    ) -> None:
        self.budget = budget
        self.timeout = timeout
        self.dry_run = dry_run
        self.protected = protected
        self.only: frozenset[str] | None = None
        self.euid = os.geteuid()
        self.connector = Connector()  # one AF_UNIX socket for all the run's connects
        self._release_by: float | None = None

    def release_deadline(self) -> float:
        """All waits of a run on tmux clients share one --timeout, counted from the first."""
        if self._release_by is None:
            self._release_by = time.monotonic() + self.timeout
        return self._release_by


def _sweep_dir(dir_fd: int, dir_path: str, result: SweepResult, run: _Run) -> DirResult:
    try:
        names = sorted(os.listdir(dir_fd))
    except OSError as exc:
        return DirResult(dir_path, DirStatus.REFUSED, f"cannot list: {exc.strerror or exc}")
    if run.only is not None:
        names = [n for n in names if n in run.only or n.removesuffix(LOCK_SUFFIX) in run.only]
    present = set(names)
    lock_files: list[str] = []
    candidates: list[tuple[str, os.stat_result]] = []
    held_locks: set[FileKey] | None = None
    # One sock_diag dump classifies the directory: listening files are live without a connect,
    # unbound ones are candidates whose connect comes under tmux's lock (the check that also
    # sees servers of other network namespaces). A dry run connects, to report what it will do.
    bindings: Bindings | None = None if run.dry_run or not names else unix_bindings()
    for name in names:
        if name.endswith(LOCK_SUFFIX) and not _is_socket(dir_fd, name):
            lock_files.append(name)  # handled with its socket, or below when orphaned
            continue
        path = _join(dir_path, name)
        probe, st = classify(
            dir_fd,
            dir_path,
            name,
            run.budget,
            euid=run.euid,
            bindings=bindings,
            connector=run.connector,
        )
        if st is None:
            continue  # gone between listing and looking: nothing to report
        if probe.state is not SocketState.STALE:
            result.sockets.append(SocketResult(path, probe.state, False, probe.reason))
        elif name in run.protected:
            protected = SocketResult(
                path, probe.state, False, "protected socket, kept", code=Code.PROTECTED
            )
            result.sockets.append(protected)
        elif run.dry_run:
            if held_locks is None:
                table = lock_table()
                held_locks = table[0] if table is not None else set()
            result.sockets.append(_dry_run_verdict(dir_fd, path, name, probe, held_locks))
        else:
            candidates.append((name, st))
    if run.dry_run:
        return DirResult(dir_path, DirStatus.SWEPT, "")
    # In batches so that holding every lock of a batch at once stays within the fd limit.
    dir_st = os.fstat(dir_fd)
    directory = (dir_st.st_dev, dir_st.st_ino)
    for batch in _batches(candidates, present):
        held = HeldLocks(directory)
        try:
            result.sockets.extend(_remove_batch(dir_fd, dir_path, batch, held, run))
        finally:
            _release(held, result, run)
    orphans = [n for n in lock_files if n[: -len(LOCK_SUFFIX)] not in present]
    held = HeldLocks(directory)
    try:
        for name in orphans:
            retired, kept = _retire_orphan_lock(dir_fd, dir_path, name, held)
            result.locks_removed += retired
            if kept is not None:
                result.sockets.append(kept)
    finally:
        _release(held, result, run)
    return DirResult(dir_path, DirStatus.SWEPT, "")


def _release(held: HeldLocks, result: SweepResult, run: _Run) -> None:
    result.lock_waits_timed_out += held.release(run.release_deadline())
    result.lock_waits.extend(held.waits)


def _is_socket(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _join(dir_path: str, name: str) -> str:
    """os.path.join for an absolute directory and a plain name, at a fraction of its cost."""
    return f"{dir_path}/{name}" if dir_path != "/" else f"/{name}"


def _batches(
    candidates: list[tuple[str, os.stat_result]], present: set[str]
) -> Iterator[list[tuple[str, os.stat_result]]]:
    """Candidates in batches whose locks are all held at once. A missing lock file costs no
    fd (the batch's own lock file is linked under its name); an existing one costs one, and
    they must stay within the fd limit. Each batch costs one pass over /proc on release, so
    batches are as large as that allows; a tmux client that wants one of these stale paths
    waits at most one batch."""
    most, own_fds = _batch_limits()
    batch: list[tuple[str, os.stat_result]] = []
    fds = 0
    for candidate in candidates:
        needs_fd = candidate[0] + LOCK_SUFFIX in present
        if batch and (len(batch) >= most or fds + needs_fd > own_fds):
            yield batch
            batch, fds = [], 0
        batch.append(candidate)
        fds += needs_fd
    if batch:
        yield batch


def _batch_limits() -> tuple[int, int]:
    """(candidates, lock files with an fd of their own) per batch."""
    import resource  # noqa: PLC0415 - only when there is something to remove

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096, 1024
    return 4096, max(16, min(1024, (soft - 64) // 2))


WOULD_REMOVE = "would remove"


def _dry_run_verdict(
    dir_fd: int, path: str, name: str, probe: Probe, held_locks: set[FileKey]
) -> SocketResult:
    """What a real run would most likely do, found without creating or taking any lock."""
    try:
        lock = os.lstat(name + LOCK_SUFFIX, dir_fd=dir_fd)
        if (lock.st_dev, lock.st_ino) in held_locks:
            reason = "lock held: a tmux client is starting a server; would be kept"
            return SocketResult(path, SocketState.SKIPPED, False, reason, code=Code.LOCK_HELD)
    except OSError:
        pass
    reason = f"{WOULD_REMOVE}: {probe.reason}"
    return SocketResult(path, SocketState.STALE, False, reason, code=Code.WOULD_REMOVE)


def _same_entry(dir_fd: int, name: str, before: os.stat_result) -> os.stat_result | None:
    try:
        now = os.lstat(name, dir_fd=dir_fd)
    except OSError:
        return None
    if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
        return None
    return now


def _unlink_lock_if_alone(
    dir_fd: int, lock_name: str, lock_fd: int, socket_name: str, ours: FileKey | None = None
) -> bool:
    """Unlink the name of the lock file we hold, but only if it is still the file we locked and
    no socket is beside it (a socket beside it means a server is there; tmux removes it then).
    `ours`: the file is the batch's own lock file (this identity), not a file found there.
    The caller keeps holding the lock: see forge_tmux.locks."""
    try:
        os.lstat(socket_name, dir_fd=dir_fd)
        return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    if ours is None:
        held = os.fstat(lock_fd)
        if held.st_size:
            return False  # written to: not tmux's lock file (see not_a_tmux_lock)
        ours = (held.st_dev, held.st_ino)
    try:
        on_disk = os.lstat(lock_name, dir_fd=dir_fd)
    except OSError:
        return False
    if (on_disk.st_dev, on_disk.st_ino) != ours:
        return False
    try:
        os.unlink(lock_name, dir_fd=dir_fd)
    except OSError:
        return False
    return True


class _BatchLock:
    """One fresh lock file per batch, locked once and hard-linked under the name of every
    candidate's missing lock file.

    Creating an inode is what costs on a disk file system (a thousand fresh lock files took 6x
    longer on ext4 than on tmpfs; a link() costs the same on both). Sharing the inode changes
    nothing for a tmux client: it opens `<socket>.lock`, finds the flock held, waits, and starts
    over by path once we release, exactly as with a file of its own. It only makes the batch's
    sockets share one lock while we hold it, which we do for all of them anyway. The private
    name is unlinked before the release; so a retired file has no name left, as locks.py
    requires (a name beside a socket we kept stays, an ordinary empty lock file afterwards).
    """

    __slots__ = ("dir_fd", "fd", "key", "name")

    def __init__(self, dir_fd: int, tag: str) -> None:
        self.dir_fd = dir_fd
        self.name = tag + LOCK_SUFFIX
        self.fd = -1
        self.key: FileKey | None = None

    def link(self, lock_name: str) -> int:
        """The batch lock's fd, now also at `lock_name`; FileExistsError if a file is there."""
        if self.fd < 0:
            fd = open_lock(self.dir_fd, self.name, create=True, exclusive=True)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new, private file: never held
            st = os.fstat(fd)
            self.fd, self.key = fd, (st.st_dev, st.st_ino)
        os.link(
            self.name,
            lock_name,
            src_dir_fd=self.dir_fd,
            dst_dir_fd=self.dir_fd,
            follow_symlinks=False,
        )
        return self.fd

    def close(self, fd: int) -> None:
        """Close a candidate's lock fd, unless it is the batch's (closed by `finish`)."""
        if fd != self.fd:
            os.close(fd)

    def finish(self, held: HeldLocks) -> None:
        """Unlink the private name; close the fd unless `held` now releases it."""
        if self.fd < 0:
            return
        # If that fails, it is an empty lock file of ours: the next sweep retires it.
        with contextlib.suppress(OSError):
            os.unlink(self.name, dir_fd=self.dir_fd)
        if not held.holds(self.fd):
            os.close(self.fd)
        self.fd = -1


def _lock_and_recheck(
    dir_fd: int, dir_path: str, name: str, st: os.stat_result, run: _Run, shared: _BatchLock
) -> tuple[SocketResult | None, int, os.stat_result | None]:
    """Take the socket's tmux lock without blocking and re-check under it. Returns a verdict
    (and closes the lock) when the socket must be kept, else (None, lock fd, current stat)."""
    lock_name = name + LOCK_SUFFIX
    lock_fd, problem = _open_tmux_lock(dir_fd, dir_path, name, lock_name, run.euid, shared)
    if problem is not None:
        return problem, -1, None
    verdict: SocketResult | None = None
    now: os.stat_result | None = None
    try:
        if lock_fd != shared.fd:  # the batch's lock file is held already
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        reason = "lock held: a tmux client is starting a server; kept"
        verdict = SocketResult(
            _join(dir_path, name), SocketState.SKIPPED, False, reason, code=Code.LOCK_HELD
        )
    if verdict is None:
        # Under the lock no tmux client can start a server on this path: re-check everything.
        # connect() stays here, the last check before the move: sock_diag sees only our network
        # namespace, a connect reaches a server in any.
        now = _same_entry(dir_fd, name, st)
        if now is None or not stat.S_ISSOCK(now.st_mode) or now.st_uid != run.euid:
            reason = "changed while locking; kept"
            verdict = SocketResult(_join(dir_path, name), SocketState.UNKNOWN, False, reason)
        else:
            target = connect_path(dir_fd, dir_path, name)
            again: Probe = (
                run.connector.probe(target)
                if target
                else Probe(SocketState.UNKNOWN, "path too long")
            )
            if again.state is not SocketState.STALE:
                reason = f"re-check under lock: {again.reason}"
                verdict = SocketResult(_join(dir_path, name), again.state, False, reason)
    if verdict is not None:
        shared.close(lock_fd)
        return verdict, -1, None
    return None, lock_fd, now


def _open_tmux_lock(
    dir_fd: int, dir_path: str, name: str, lock_name: str, euid: int, shared: _BatchLock
) -> tuple[int, SocketResult | None]:
    """Open (creating it if need be) the lock file beside a candidate: its fd, or -1 and why the
    socket `name` is kept. Usually there is none (tmux's server removes it once it listens),
    and then the batch's own lock file, already locked, is linked under that name: one link(),
    no new inode (see _BatchLock)."""
    try:
        return shared.link(lock_name), None
    except FileExistsError:
        pass
    except OSError as exc:
        return -1, _cannot_open(_join(dir_path, name), lock_name, exc)
    path = _join(dir_path, name)  # from here on, the rare case: a lock file is there
    try:
        existing = os.lstat(lock_name, dir_fd=dir_fd)
        if not stat.S_ISREG(existing.st_mode):
            # Never opened: opening a device or a fifo can have effects of its own.
            reason = f"{lock_name} is not a regular file; kept"
            return -1, SocketResult(path, SocketState.SKIPPED, False, reason)
        lock_fd = open_lock(dir_fd, lock_name, create=True)
    except OSError as exc:
        return -1, _cannot_open(path, lock_name, exc)
    if not lock_is_ours(lock_fd, euid):
        os.close(lock_fd)
        return -1, SocketResult(path, SocketState.SKIPPED, False, "lock file is not ours; kept")
    return lock_fd, None


def _cannot_open(path: str, lock_name: str, exc: OSError) -> SocketResult:
    """A stale socket stays (an immutable directory, a read-only mount): that is a failure of
    the sweep, not a judgement; the timer must not report success."""
    reason = f"cannot open lock file {lock_name}: {exc.strerror or exc}; kept"
    return SocketResult(path, SocketState.STALE, False, reason, failed=True)


QUARANTINE_PREFIX = ".forge-tmux-sweep-"


class _Candidate(NamedTuple):
    name: str
    now: os.stat_result  # what the re-check under the lock judged
    lock_fd: int
    quarantine: str = ""  # the private name it was moved to, once moved


def _remove_batch(
    dir_fd: int,
    dir_path: str,
    batch: list[tuple[str, os.stat_result]],
    held: HeldLocks,
    run: _Run,
) -> list[SocketResult]:
    """Lock and re-check every candidate of the batch, move each out of the way, ask the kernel
    once which files are bound, then unlink what is still the stale file. Retired lock files go
    to `held`, released by the caller.

    Why the move: a server re-binding on SIGUSR1 takes no lock; it unlinks whatever is at its
    path and binds a new socket there, possibly with the same inode number. Unlinking by name
    after the checks could remove that new socket. rename() moves exactly one file atomically, so
    whatever a server binds at the real name afterwards is never touched, and a file that turns
    out to be live (bound, accepting, or not the inode we judged) is put back with link(), which
    never replaces anything.
    """
    results: list[SocketResult] = []
    pending: deque[_Candidate] = deque()
    tag = _quarantine_tag()
    shared = _BatchLock(dir_fd, tag)
    try:
        for name, st in batch:
            verdict, lock_fd, now = _lock_and_recheck(dir_fd, dir_path, name, st, run, shared)
            if verdict is not None:
                results.append(verdict)
            elif now is not None:
                pending.append(_Candidate(name, now, lock_fd))
        moved: deque[_Candidate] = deque()
        while pending:
            candidate = pending.popleft()
            quarantine = f"{tag}-{len(moved)}"
            failure = _quarantine(dir_fd, dir_path, candidate.name, quarantine)
            if failure is not None:
                results.append(failure)
                shared.close(candidate.lock_fd)
            else:
                moved.append(
                    _Candidate(candidate.name, candidate.now, candidate.lock_fd, quarantine)
                )
        pending = moved
        # Refused is also what a server says between its bind() and its listen(); the kernel
        # knows whether any socket is bound to these very files.
        bound = bound_files() if pending else None
        while pending:
            candidate = pending.popleft()
            results.extend(_settle(dir_fd, dir_path, candidate, bound, held, run, shared))
    finally:
        for candidate in pending:  # only on an exception: put back what was moved
            if candidate.quarantine:
                _restore(dir_fd, candidate.quarantine, candidate.name)
            shared.close(candidate.lock_fd)
        shared.finish(held)
    return results


def _quarantine_tag() -> str:
    """A private name prefix for one batch: nobody else can guess it (rename() replaces)."""
    # os.urandom, not `secrets`: same kernel randomness, without importing hashlib and hmac.
    return f"{QUARANTINE_PREFIX}{os.getpid()}-{os.urandom(8).hex()}"


def _quarantine(dir_fd: int, dir_path: str, name: str, quarantine: str) -> SocketResult | None:
    """Move `name` to `quarantine`; a result only when that failed."""
    path = _join(dir_path, name)
    try:
        os.rename(name, quarantine, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileNotFoundError:
        return SocketResult(path, SocketState.STALE, False, "vanished before removal")
    except OSError as exc:
        reason = f"could not remove: {exc.strerror or exc}"
        return SocketResult(path, SocketState.STALE, False, reason, failed=True)
    return None


def _restore(dir_fd: int, quarantine: str, name: str) -> bool:
    """Put a moved file back under its name, never replacing what may be there now."""
    try:
        os.link(quarantine, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        os.unlink(quarantine, dir_fd=dir_fd)
    except OSError:
        return False
    return True


def _settle(
    dir_fd: int,
    dir_path: str,
    candidate: _Candidate,
    bound: frozenset[FileKey] | None,
    held: HeldLocks,
    run: _Run,
    shared: _BatchLock,
) -> list[SocketResult]:
    """Unlink the moved file if it is still the stale socket we judged, else put it back."""
    name, now, lock_fd, quarantine = candidate
    path = _join(dir_path, name)
    retired = False
    try:
        keep = ""
        try:
            moved = os.lstat(quarantine, dir_fd=dir_fd)
        except OSError:
            return [SocketResult(path, SocketState.STALE, False, "vanished before removal")]
        if (moved.st_dev, moved.st_ino) != (now.st_dev, now.st_ino) or not stat.S_ISSOCK(
            moved.st_mode
        ):
            keep = "replaced while being removed (a server re-bound it); kept"
        elif bound is not None:
            # A listening socket is always bound: the kernel's answer covers connect() too.
            if (moved.st_dev, moved.st_ino) in bound:
                keep = "a server is bound to it (starting, or re-bound on SIGUSR1); kept"
        else:
            target = connect_path(dir_fd, dir_path, quarantine)
            if target is None or run.connector.probe(target).state is not SocketState.STALE:
                keep = "a server answers on it (re-bound while being removed); kept"
        if keep:
            if _restore(dir_fd, quarantine, name):
                return [SocketResult(path, SocketState.SKIPPED, False, keep)]
            lost = f"{keep}, but it could not be put back: it is now {quarantine}"
            return [SocketResult(path, SocketState.SKIPPED, False, lost, failed=True)]
        try:
            os.unlink(quarantine, dir_fd=dir_fd)
        except OSError as exc:
            reason = f"could not remove: {exc.strerror or exc} (left as {quarantine})"
            return [SocketResult(path, SocketState.STALE, False, reason, failed=True)]
        batch_lock = shared.key if lock_fd == shared.fd else None
        retired = _unlink_lock_if_alone(dir_fd, name + LOCK_SUFFIX, lock_fd, name, batch_lock)
        reason = "removed: no server listening (connection refused, re-checked under lock)"
        removed = [SocketResult(path, SocketState.STALE, True, reason, code=Code.REMOVED)]
        if not retired and batch_lock is None and os.fstat(lock_fd).st_size:
            # Not tmux's lock file, so kept; flocking it was harmless (a tmux client would too).
            kept = "named like a lock file but not empty: not tmux's; kept"
            removed.append(SocketResult(path + LOCK_SUFFIX, SocketState.SKIPPED, False, kept))
        return removed
    finally:
        if retired:
            held.add(lock_fd, name + LOCK_SUFFIX)
        else:
            shared.close(lock_fd)


def _retire_orphan_lock(
    dir_fd: int, dir_path: str, lock_name: str, held: HeldLocks
) -> tuple[int, SocketResult | None]:
    """A lock file with no socket beside it: left by a client that died while starting a server
    or by a re-check that kept its socket. Retired only if it is tmux's (an empty regular file of
    ours) and we can take it, as tmux's server would, and released through `held`. Anything else
    named `*.lock` is someone else's file: left alone and reported as skipped."""
    path = _join(dir_path, lock_name)
    try:
        not_tmux = not_a_tmux_lock(os.lstat(lock_name, dir_fd=dir_fd))
    except OSError:
        return 0, None  # gone
    if not_tmux:
        return 0, SocketResult(path, SocketState.SKIPPED, False, f"{not_tmux}; kept")
    try:
        lock_fd = open_lock(dir_fd, lock_name, create=False)
    except OSError:
        return 0, None  # replaced by a symlink (ELOOP) or gone meanwhile: leave it
    retired = False
    try:
        if not lock_is_ours(lock_fd):
            return 0, None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0, None
        socket_name = lock_name[: -len(LOCK_SUFFIX)]
        retired = _unlink_lock_if_alone(dir_fd, lock_name, lock_fd, socket_name)
        return int(retired), None
    finally:
        if retired:
            held.add(lock_fd, lock_name)
        else:
            os.close(lock_fd)


def render_human(result: SweepResult, *, dry_run: bool = False) -> str:
    """The default report: directories not swept and entries kept for a reason, then a summary.
    Live sockets are the normal case and removals are logged one by one on stderr, so neither
    is repeated here."""
    lines = [
        f"{d.status.value:8} {display(d.path)}: {d.reason}"
        for d in result.dirs
        if d.status is not DirStatus.SWEPT
    ]
    lines += [
        f"{s.state.value:8} {display(s.path)}: {s.reason}"
        for s in result.sockets
        if s.state is not SocketState.LIVE and not s.removed
    ]
    counts = result.summary()
    would = sum(1 for s in result.sockets if s.code is Code.WOULD_REMOVE)
    acted = f"{would} would be removed" if dry_run else f"{counts['removed']} removed"
    lines.append(
        f"sweep: {counts['live']} live, {counts['stale']} stale, {acted}, "
        f"{counts['unknown']} unknown, {counts['skipped']} skipped"
        f" in {len(result.dirs)} dir(s), {result.duration_ms:.1f} ms"
    )
    return "\n".join(lines)


# Logging levels as numbers, so this module need not import logging (see cli/_sweep.py).
INFO, NOTICE, WARNING = 20, 25, 30


def log_events(result: SweepResult) -> list[tuple[int, str]]:
    """What the journal must hear about: every removal (notice), every refusal and failure."""
    events = [
        (WARNING, f"refused {display(d.path)}: {d.reason}")
        for d in result.dirs
        if d.status is DirStatus.REFUSED
    ]
    for s in result.sockets:
        if s.removed:
            events.append((NOTICE, f"removed stale tmux socket {display(s.path)}: {s.reason}"))
        elif s.failed:
            events.append((WARNING, f"{display(s.path)}: {s.reason}"))
    # Shown with --verbose only (the CLI logs at NOTICE and above otherwise).
    events += [(INFO, line) for line in result.lock_waits]
    if result.lock_waits_timed_out:
        events.append(
            (
                WARNING,
                f"released {result.lock_waits_timed_out} retired lock file(s) while another "
                "process still held them open without waiting (see --timeout)",
            )
        )
    return events
