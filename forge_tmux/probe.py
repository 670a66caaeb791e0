"""The one place that decides whether a tmux socket has a server behind it.

Ground truth is a non-blocking `connect()`: it needs no tmux binary and can never start, replace
or resurrect a server (tmux only starts servers from client commands such as `new-session`).
Sweep, spawn, health and the bot all ask this module; nothing else decides liveness.
"""

import errno
import os
import stat
import time
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from forge_tmux.errors import SockDiagUnavailable
from forge_tmux.paths import SUN_PATH_MAX

if TYPE_CHECKING:
    import socket


class SocketState(StrEnum):
    LIVE = "live"  # something is listening (it may still be hung: see health)
    STALE = "stale"  # a socket file with nobody listening (connect refused)
    UNKNOWN = "unknown"  # the probe could not tell: never a reason to act
    SKIPPED = "skipped"  # not ours to judge: not a socket, a symlink, another user's


class Probe(NamedTuple):
    state: SocketState
    reason: str
    # The server's pid from SO_PEERCRED, when connect() succeeded (even a SIGSTOP-ed server).
    peer_pid: int | None = None


class Budget:
    """One time budget shared by all the probes of a run.

    A non-blocking AF_UNIX connect answers at once (a full backlog is EAGAIN, not a wait), so the
    budget is only spent if a connect ever reports EINPROGRESS; it keeps such waits to one
    `--timeout` for the whole run rather than one per socket.
    """

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


def _peer_pid(sock: "socket.socket") -> int | None:
    import socket  # noqa: PLC0415 - see probe_connect
    import struct  # noqa: PLC0415

    ucred = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, ucred.size)
    except OSError:
        return None
    pid: int = ucred.unpack(raw)[0]
    return pid or None


def connect_path(dir_fd: int | None, dir_path: str, name: str) -> str | None:
    """A path for connect() that reaches `name` inside the already-opened directory.

    Through `/proc/self/fd/N/` the connect goes to the directory we opened and checked, even if
    the path above it is renamed meanwhile, and long names still fit in sun_path. Falls back to
    the plain path where /proc is unavailable. None when neither fits in 107 bytes.
    """
    if dir_fd is not None and _proc_fd_works():
        via_proc = f"/proc/self/fd/{dir_fd}/{name}"
        if _encoded_len(via_proc) <= SUN_PATH_MAX:
            return via_proc
    plain = os.path.join(dir_path, name)
    return plain if _encoded_len(plain) <= SUN_PATH_MAX else None


def _encoded_len(path: str) -> int:
    """Length in bytes as the kernel gets it; an ASCII name (nearly all) needs no encoding."""
    return len(path) if path.isascii() else len(os.fsencode(path))


_proc_fd: bool | None = None


def _proc_fd_works() -> bool:
    """Whether /proc/self/fd paths lead to our descriptors (checked once per process)."""
    global _proc_fd  # noqa: PLW0603 - a fact about the process, computed once
    if _proc_fd is None:
        _proc_fd = os.path.isdir("/proc/self/fd")
    return _proc_fd


def probe_connect(
    path: str, budget: Budget | None = None, connector: "Connector | None" = None
) -> Probe:
    """Classify the socket at `path` by connecting to it; no tmux, no side effect on the file."""
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        return Probe(SocketState.UNKNOWN, "path longer than 107 bytes, cannot connect")
    if connector is not None:
        return connector.probe(path, budget)
    with Connector() as one:
        return one.probe(path, budget)


class Connector:
    """One AF_UNIX socket reused for a run of connect()s: a connect that failed (refused, gone)
    leaves it unconnected and reusable, so a sweep of thousands of stale sockets creates one
    socket object instead of thousands. Replaced after a connect that succeeded or hung."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None

    def __enter__(self) -> "Connector":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def probe(self, path: str, budget: Budget | None = None) -> Probe:
        # Imported here, not at the top: `socket` builds its enums at import (~1.3 ms), and a
        # sweep of an empty directory, the common case every 10 minutes, never needs it.
        import socket  # noqa: PLC0415

        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        sock = self._sock
        reusable = False
        try:
            code = sock.connect_ex(path)
            if code == errno.EINPROGRESS:
                import select  # noqa: PLC0415

                wait = budget.remaining() if budget is not None else 0.0
                _, writable, _ = select.select([], [sock], [], wait)
                if not writable:
                    return Probe(SocketState.UNKNOWN, "connect timed out")
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                return Probe(SocketState.LIVE, "server listening", _peer_pid(sock))
            if code == errno.EAGAIN:
                # The listen backlog is full: a server exists and is busy (or stopped).
                return Probe(SocketState.LIVE, "server listening, backlog full")
            reusable = code in (errno.ECONNREFUSED, errno.ENOENT)
            if code == errno.ECONNREFUSED:
                return Probe(SocketState.STALE, "no server listening (connection refused)")
            if code == errno.ENOENT:
                return Probe(SocketState.UNKNOWN, "vanished while probing")
            return Probe(SocketState.UNKNOWN, f"connect failed: {os.strerror(code)}")
        except OSError as exc:
            return Probe(SocketState.UNKNOWN, f"connect failed: {exc.strerror or exc}")
        finally:
            if not reusable:
                self.close()


class Bindings(NamedTuple):
    """Files that unix sockets of this network namespace are bound to, as (st_dev, st_ino)."""

    listening: frozenset[tuple[int, int]]
    bound: frozenset[tuple[int, int]]  # listening, or bound and not listening yet
    full: frozenset[tuple[int, int]] = frozenset()  # listening with a full backlog


def bound_files() -> frozenset[tuple[int, int]] | None:
    """(st_dev, st_ino) of every file that a unix socket in this network namespace is bound to,
    straight from the kernel (sock_diag with UDIAG_SHOW_VFS); None when that is unavailable
    (no netlink in a sandbox, an old kernel).

    This is what "stale" means at bottom: a socket file no socket is bound to. connect() cannot
    tell a dead server's file from a live server's between its bind() and its listen() (both are
    refused); the kernel can. The sweep asks just before it unlinks, so a server that binds
    without tmux's lock (a client that raced a lock file's removal, SIGUSR1 recreating a
    deleted socket) is never unlinked under its own feet.
    """
    found = unix_bindings()
    return None if found is None else found.bound


def unix_bindings() -> Bindings | None:
    """One sock_diag dump (unixdiag, the one door to it): which files are bound, which of them
    listen, and which listeners' backlogs are full. None when netlink is unavailable. It sees
    this network namespace only: a server in another one (a container sharing the directory) is
    invisible here, which is why connect() stays the last check."""
    import struct  # noqa: PLC0415 - only a sweep with candidates asks the kernel

    from forge_tmux import unixdiag  # noqa: PLC0415

    listening: set[tuple[int, int]] = set()
    bound: set[tuple[int, int]] = set()
    full: set[tuple[int, int]] = set()
    try:
        records = unixdiag.dump(unixdiag.BOUND_STATES, unixdiag.SHOW_VFS | unixdiag.SHOW_RQLEN)
    except SockDiagUnavailable:
        return None  # the caller falls back on the other checks
    for state, _, attrs in records:
        key = unixdiag.file_key(attrs)
        if key is None:
            continue
        bound.add(key)
        if state == unixdiag.STATE_LISTEN:
            listening.add(key)
            rqlen = attrs.get(unixdiag.UNIX_DIAG_RQLEN)
            # A listener's queued connections and its backlog: EAGAIN beyond it.
            if rqlen is not None and len(rqlen) >= 8:
                queued, backlog = struct.unpack_from("=II", rqlen)
                if queued > backlog:
                    full.add(key)
    return Bindings(frozenset(listening), frozenset(bound), frozenset(full))


def precheck(st: os.stat_result, euid: int) -> Probe | None:
    """The entry-level rules before any connect: symlinks, non-sockets and others' files are
    skipped. None means "a socket of ours: go and connect"."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return Probe(SocketState.SKIPPED, "symlink, never followed")
    if not stat.S_ISSOCK(mode):
        kind = (
            "directory"
            if stat.S_ISDIR(mode)
            else "fifo"
            if stat.S_ISFIFO(mode)
            else "regular file"
            if stat.S_ISREG(mode)
            else "special file"
        )
        return Probe(SocketState.SKIPPED, f"not a socket ({kind})")
    if st.st_uid != euid:
        return Probe(SocketState.SKIPPED, f"owned by uid {st.st_uid}, not ours")
    return None


def classify(
    dir_fd: int | None,
    dir_path: str,
    name: str,
    budget: Budget | None = None,
    *,
    euid: int | None = None,
    bindings: Bindings | None = None,
    connector: Connector | None = None,
) -> tuple[Probe, os.stat_result | None]:
    """Classify one directory entry: lstat (never following), the rules, then the kernel's
    `bindings` when given (a listening file is live without a connect; an unbound one is stale
    pending the caller's connect under tmux's lock), else connect.

    Returns the stat it judged, so a caller about to act can prove the entry did not change.
    """
    try:
        st = (
            os.lstat(name, dir_fd=dir_fd)
            if dir_fd is not None
            else os.lstat(os.path.join(dir_path, name))
        )
    except FileNotFoundError:
        return Probe(SocketState.UNKNOWN, "vanished while probing"), None
    except OSError as exc:
        return Probe(SocketState.UNKNOWN, f"cannot stat: {exc.strerror or exc}"), None
    verdict = precheck(st, os.geteuid() if euid is None else euid)
    if verdict is not None:
        return verdict, st
    if bindings is not None:
        key = (st.st_dev, st.st_ino)
        if key in bindings.full:
            return Probe(SocketState.LIVE, "server listening, backlog full"), st
        if key in bindings.listening:
            return Probe(SocketState.LIVE, "server listening"), st
        if key not in bindings.bound:
            return Probe(SocketState.STALE, "no socket bound to it (kernel)"), st
        # Bound, not listening yet: a server between bind() and listen(); connect() tells.
    target = connect_path(dir_fd, dir_path, name)
    if target is None:
        return Probe(SocketState.UNKNOWN, "path longer than 107 bytes, cannot connect"), st
    return probe_connect(target, budget, connector), st


def probe_path(path: str, budget: Budget | None = None) -> Probe:
    """Classify a socket by its full path (spawn, health): same rules as the sweep."""
    dir_path, name = os.path.split(path)
    return classify(None, dir_path, name, budget)[0]
