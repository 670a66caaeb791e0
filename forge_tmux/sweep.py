"""The janitor: remove stale tmux sockets, provably nothing else, race-free against tmux.

Safety rules, in the order they are applied:
- A directory is opened with O_NOFOLLOW and must be a real directory owned by us with no group or
  other permission bits (tmux's own rule, made stricter); otherwise nothing in it is touched.
- Every entry is judged relative to that directory descriptor, never through a path that a
  symlink could redirect; only sockets owned by the effective uid are candidates.
- A candidate is removed only under tmux's own lock `<socket>.lock` (taken without blocking: a
  held lock means a client is starting a server right now) and only after a re-check under the
  lock: same inode, still a socket, still ours, connect still refused. A tmux client that wants
  the path waits on that same lock and re-tries connect() after it, so it cannot be overtaken.
- Just before the unlink, the kernel is asked (sock_diag) whether any socket is bound to that
  very file: a server between bind() and listen() is refused like a stale one, and a client that
  raced a lock file's removal (it opened the old lock file, we unlinked it, its flock then
  succeeded on the orphaned inode) starts its server without the lock excluding anyone.
- Lock files are removed only while we hold them and only when no socket is beside them, as
  tmux's own server does after it starts; so the sweep leaves no debris behind.
"""

import fcntl
import os
import stat
import time
from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple

from forge_tmux.paths import display
from forge_tmux.probe import (
    Budget,
    Probe,
    SocketState,
    bound_files,
    classify,
    connect_path,
    probe_connect,
)

LOCK_SUFFIX = ".lock"


class DirStatus(StrEnum):
    SWEPT = "swept"
    MISSING = "missing"
    REFUSED = "refused"


class DirResult(NamedTuple):
    path: str
    status: DirStatus
    reason: str


class SocketResult(NamedTuple):
    path: str
    state: SocketState
    removed: bool
    reason: str
    failed: bool = False  # a stale socket we meant to remove and could not


class SweepResult:
    """What a sweep found and did. A plain class: it is filled in as the sweep goes (and a
    dataclass would cost start-up time on the hot path, see config.py)."""

    __slots__ = ("dirs", "duration_ms", "locks_removed", "sockets")

    def __init__(self) -> None:
        self.dirs: list[DirResult] = []
        self.sockets: list[SocketResult] = []
        self.locks_removed = 0
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
                }
                for s in self.sockets
            ],
            "summary": self.summary(),
            "duration_ms": round(self.duration_ms, 3),
        }


def open_socket_dir(path: str) -> tuple[int | None, DirResult]:
    """Open a socket directory if it is safe to act in; the fd is None when it is not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, DirResult(path, DirStatus.MISSING, "does not exist")
    except OSError as exc:
        if os.path.islink(path):
            return None, DirResult(path, DirStatus.REFUSED, "is a symlink, never followed")
        return None, DirResult(path, DirStatus.REFUSED, f"cannot open: {exc.strerror or exc}")
    st = os.fstat(fd)
    problem = unsafe_dir_reason(st, os.geteuid())
    if problem:
        os.close(fd)
        return None, DirResult(path, DirStatus.REFUSED, problem)
    return fd, DirResult(path, DirStatus.SWEPT, "")


def unsafe_dir_reason(st: os.stat_result, euid: int) -> str:
    """Why a directory is not ours to clean, or "" when it is."""
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != euid:
        return f"owned by uid {st.st_uid}, not ours"
    if st.st_mode & 0o077:
        return f"unsafe permissions {stat.S_IMODE(st.st_mode):04o} (group/other bits set)"
    return ""


def sweep(
    dirs: Iterable[str],
    *,
    dry_run: bool = False,
    timeout: float = 2.0,
    protected: Iterable[str] = (),
) -> SweepResult:
    """Sweep every directory; `protected` socket names are reported, never removed."""
    started = time.perf_counter()
    result = SweepResult()
    budget = Budget(timeout)
    protected_names = frozenset(protected)
    seen: set[str] = set()
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
            dir_result = _sweep_dir(fd, real, result, budget, dry_run, protected_names)
        finally:
            os.close(fd)
        result.dirs.append(dir_result)
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result


def _sweep_dir(
    dir_fd: int,
    dir_path: str,
    result: SweepResult,
    budget: Budget,
    dry_run: bool,
    protected: frozenset[str],
) -> DirResult:
    try:
        names = sorted(os.listdir(dir_fd))
    except OSError as exc:
        return DirResult(dir_path, DirStatus.REFUSED, f"cannot list: {exc.strerror or exc}")
    present = set(names)
    for name in names:
        if name.endswith(LOCK_SUFFIX):
            continue  # lock files are handled with their socket, or below when orphaned
        entry = _judge(dir_fd, dir_path, name, budget, dry_run, protected)
        if entry is not None:
            result.sockets.append(entry)
    if not dry_run:
        for name in names:
            if name.endswith(LOCK_SUFFIX) and name[: -len(LOCK_SUFFIX)] not in present:
                result.locks_removed += _remove_orphan_lock(dir_fd, name)
    return DirResult(dir_path, DirStatus.SWEPT, "")


def _judge(
    dir_fd: int,
    dir_path: str,
    name: str,
    budget: Budget,
    dry_run: bool,
    protected: frozenset[str],
) -> SocketResult | None:
    path = os.path.join(dir_path, name)
    probe, st = classify(dir_fd, dir_path, name, budget)
    if st is None:
        return None  # gone between listing and looking: nothing to report
    if probe.state is not SocketState.STALE:
        return SocketResult(path, probe.state, False, probe.reason)
    if name in protected:
        return SocketResult(path, SocketState.STALE, False, "protected socket, kept")
    if dry_run:
        return SocketResult(path, SocketState.STALE, False, f"would remove: {probe.reason}")
    return _remove_under_lock(dir_fd, dir_path, name, st)


def open_lock(dir_fd: int, lock_name: str, create: bool) -> int:
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    if create:
        flags |= os.O_CREAT
    return os.open(lock_name, flags, 0o600, dir_fd=dir_fd)


def lock_is_ours(lock_fd: int) -> bool:
    st = os.fstat(lock_fd)
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def _same_entry(dir_fd: int, name: str, before: os.stat_result) -> os.stat_result | None:
    try:
        now = os.lstat(name, dir_fd=dir_fd)
    except OSError:
        return None
    if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
        return None
    return now


def _unlink_lock_if_alone(dir_fd: int, lock_name: str, lock_fd: int, socket_name: str) -> bool:
    """Remove the lock file we hold, but only if it is still the file we locked and no socket
    is beside it (a socket beside it means a server is there, and tmux removes it itself)."""
    try:
        os.lstat(socket_name, dir_fd=dir_fd)
        return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    held = os.fstat(lock_fd)
    try:
        on_disk = os.lstat(lock_name, dir_fd=dir_fd)
    except OSError:
        return False
    if (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino):
        return False
    try:
        os.unlink(lock_name, dir_fd=dir_fd)
    except OSError:
        return False
    return True


def _remove_under_lock(dir_fd: int, dir_path: str, name: str, st: os.stat_result) -> SocketResult:
    path = os.path.join(dir_path, name)
    lock_name = name + LOCK_SUFFIX
    try:
        lock_fd = open_lock(dir_fd, lock_name, create=True)
    except OSError as exc:
        reason = f"cannot open lock file {lock_name}: {exc.strerror or exc}; kept"
        return SocketResult(path, SocketState.UNKNOWN, False, reason)
    try:
        if not lock_is_ours(lock_fd):
            return SocketResult(path, SocketState.SKIPPED, False, "lock file is not ours; kept")
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            reason = "lock held: a tmux client is starting a server; kept"
            return SocketResult(path, SocketState.SKIPPED, False, reason)
        # Under the lock no tmux client can start a server on this path: re-check everything.
        now = _same_entry(dir_fd, name, st)
        if now is None or not stat.S_ISSOCK(now.st_mode) or now.st_uid != os.geteuid():
            return SocketResult(path, SocketState.UNKNOWN, False, "changed while locking; kept")
        target = connect_path(dir_fd, dir_path, name)
        again: Probe = (
            probe_connect(target) if target else Probe(SocketState.UNKNOWN, "path too long")
        )
        if again.state is not SocketState.STALE:
            return SocketResult(path, again.state, False, f"re-check under lock: {again.reason}")
        # Refused is also what a server says between its bind() and its listen(). The lock keeps
        # tmux clients out, but not one that raced a lock file's removal, nor a server re-binding
        # on SIGUSR1; the kernel knows whether any socket is bound to this very file.
        bound = bound_files()
        if bound is not None and (now.st_dev, now.st_ino) in bound:
            reason = "a server is bound to it and starting (not yet listening); kept"
            return SocketResult(path, SocketState.SKIPPED, False, reason)
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return SocketResult(path, SocketState.STALE, False, "vanished before removal")
        except OSError as exc:
            reason = f"could not remove: {exc.strerror or exc}"
            return SocketResult(path, SocketState.STALE, False, reason, failed=True)
        _unlink_lock_if_alone(dir_fd, lock_name, lock_fd, name)
        reason = "removed: no server listening (connection refused, re-checked under lock)"
        return SocketResult(path, SocketState.STALE, True, reason)
    finally:
        os.close(lock_fd)  # releases the flock


def _remove_orphan_lock(dir_fd: int, lock_name: str) -> int:
    """A lock file with no socket beside it: left by a client that died while starting a server
    or by an older sweep. Removed only if we can take it, exactly like tmux's server would."""
    try:
        lock_fd = open_lock(dir_fd, lock_name, create=False)
    except OSError:
        return 0  # a symlink (ELOOP), gone, or not ours to open: leave it
    try:
        if not lock_is_ours(lock_fd):
            return 0
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        return int(
            _unlink_lock_if_alone(dir_fd, lock_name, lock_fd, lock_name[: -len(LOCK_SUFFIX)])
        )
    finally:
        os.close(lock_fd)


def render_human(result: SweepResult, *, dry_run: bool = False) -> str:
    """The default report: one line per directory and per socket that is not simply live."""
    lines = []
    for d in result.dirs:
        if d.status is not DirStatus.SWEPT:
            lines.append(f"{d.status.value:8} {display(d.path)}: {d.reason}")
    for s in result.sockets:
        if s.state is not SocketState.LIVE:
            lines.append(f"{s.state.value:8} {display(s.path)}: {s.reason}")
    counts = result.summary()
    acted = f"{counts['stale']} would be removed" if dry_run else f"{counts['removed']} removed"
    lines.append(
        f"sweep: {counts['live']} live, {counts['stale']} stale, {acted}, "
        f"{counts['unknown']} unknown, {counts['skipped']} skipped"
        f" in {len(result.dirs)} dir(s), {result.duration_ms:.1f} ms"
    )
    return "\n".join(lines)


# Logging levels as numbers, so this module need not import logging (see cli/_sweep.py).
NOTICE, WARNING = 25, 30


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
    return events
