"""Orphaned tmux servers: a `tmux: server` process alive whose socket file is gone.

A /tmp cleaner or a careless `rm` deletes the socket of a live, idle server; its sessions then
look lost although the server runs. SIGUSR1 makes tmux unlink whatever is at its path and bind
again, so it must only be sent after proving which path the server listened on and that nothing
else listens there now.

The proof comes from the kernel (sock_diag, `unixdiag`): for every listening unix socket it gives
the bound path, the inode of the file that bind() created and the socket's own inode. A listener
is suspect when the file at its bound path is gone or is another inode (tmux-facts: the inode of
the bound file equals stat(path).st_ino while the path is that file). A suspect is an orphaned
server only when a `tmux: server` process holds that very socket: its inode appears as
`socket:[N]` in /proc/PID/fd. Command lines and psutil's connection lists prove nothing (they
keep showing a path after the file is deleted). Processes are read from /proc (name, state,
start time, owner), and only when there is a suspect, which is rare: the common case costs one
netlink round trip and an lstat per listener in the checked directories.
When the kernel cannot be asked, or a tmux server that may hold a suspect cannot be inspected,
orphans are unknown (`OrphansUnknown`), and unknown never leads to a signal.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import NamedTuple

# Raised here; `health` and the CLI import it from here.
from forge_tmux.errors import OrphansUnknown, SockDiagUnavailable
from forge_tmux.paths import display
from forge_tmux.unixdiag import BoundSocket, bound_sockets

TMUX_SERVER_NAME = "tmux: server"


class TmuxServer(NamedTuple):
    pid: int
    uid: int
    started: int  # start time in clock ticks since boot (/proc/PID/stat): tells pid reuse apart


class Orphan(NamedTuple):
    pid: int
    uid: int
    path: str  # where the server listened (bound) and where SIGUSR1 would put its socket back
    inode: int  # the inode of its own (deleted) socket file
    reason: str  # what is at the path now: nothing, or another file
    started: int = 0  # the server's start time (see TmuxServer), checked again before a signal


class ProcInfo(NamedTuple):
    name: str  # comm
    state: str  # R, S, D, T, t, Z, ...
    started: int  # clock ticks since boot
    euid: int


def proc_info(pid: int) -> ProcInfo | None:
    """What /proc says about a process; None once it is gone (or /proc is not readable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
        with open(f"/proc/{pid}/status", "rb") as fh:
            uid_line = next(line for line in fh if line.startswith(b"Uid:"))
        # `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split at the last.
        head, tail = raw.rsplit(b")", 1)
        fields = tail.split()
        return ProcInfo(
            name=head.split(b"(", 1)[1].decode(errors="replace"),
            state=fields[0].decode(),
            started=int(fields[19]),  # field 22 of stat(5), counted after the comm
            euid=int(uid_line.split()[2]),
        )
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def tmux_servers(uid: int | None) -> list[TmuxServer]:
    """Every running `tmux: server` process, of user `uid` only unless it is None."""
    servers = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = proc_info(int(entry))
        if info is None or info.name != TMUX_SERVER_NAME or info.state == "Z":
            continue
        if uid is None or info.euid == uid:
            servers.append(TmuxServer(int(entry), info.euid, info.started))
    return servers


def socket_inodes(pid: int) -> frozenset[int] | None:
    """The inodes of the sockets a process holds (`socket:[N]` in /proc/PID/fd): empty once it
    is gone, None when its fds may not be read (another user's process, as non-root; a private
    user namespace): no proof either way."""
    found = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except PermissionError:
        return None
    except OSError:
        return frozenset()
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except PermissionError:
            return None
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            found.add(int(link[8:-1]))
    return frozenset(found)


def what_is_at(path: str, listener: BoundSocket) -> str | None:
    """Why `listener` no longer owns the file at its path, or None when it still does (or we
    cannot tell: an unreadable path is never taken as proof of anything)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "socket file deleted"
    except NotADirectoryError:
        return "socket directory gone"
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return "socket file deleted"
        return None
    if (st.st_dev, st.st_ino) == (listener.dev, listener.ino):
        return None
    kind = "socket" if stat.S_ISSOCK(st.st_mode) else "file that is not a socket"
    return f"path now holds another {kind} (inode {st.st_ino})"


def suspects(
    bound: Iterable[BoundSocket], within: frozenset[str] | None
) -> list[tuple[BoundSocket, str]]:
    """Listening sockets (in the directories `within`, or anywhere if None) whose file is gone
    or replaced, with what is at the path now. Abstract and relative names prove nothing."""
    found = []
    for sock in bound:
        if not sock.listening or not sock.path.startswith("/"):
            continue
        if within is not None and os.path.dirname(sock.path) not in within:
            continue
        reason = what_is_at(sock.path, sock)
        if reason is not None:
            found.append((sock, reason))
    return found


def find_orphans(
    servers: Iterable[TmuxServer],
    suspected: Sequence[tuple[BoundSocket, str]],
    held: Callable[[int], frozenset[int]],
) -> list[Orphan]:
    """The servers that hold a suspect listening socket (`held(pid)`: the socket inodes of a
    process). A server holding none is not reported: nothing proves where it listened."""
    by_sock = {sock.sock_ino: (sock, reason) for sock, reason in suspected}
    orphans = []
    for server in servers:
        for sock_ino in held(server.pid) & by_sock.keys():
            sock, reason = by_sock[sock_ino]
            orphans.append(
                Orphan(server.pid, server.uid, sock.path, sock.ino, reason, server.started)
            )
    return sorted(orphans, key=lambda o: (o.path, o.pid))


def orphaned_servers(within: frozenset[str] | None, *, uid: int | None) -> list[Orphan]:
    """Find orphans of user `uid` (None: everybody's) in the directories `within` (None: all).

    Raises OrphansUnknown when the kernel cannot be asked, or when a listener's file is gone,
    no server we can see holds it, and a tmux server's fds could not be read: that one may."""
    try:
        suspected = suspects(bound_sockets(), within)
    except SockDiagUnavailable as exc:
        raise OrphansUnknown(str(exc)) from None
    if not suspected:
        return []  # the common case: no /proc scan at all
    servers = tmux_servers(uid)
    held = {server.pid: socket_inodes(server.pid) for server in servers}
    found = find_orphans(servers, suspected, lambda pid: held[pid] or frozenset())
    blind = sorted(pid for pid, inodes in held.items() if inodes is None)
    proven = {(o.path, o.inode) for o in found}
    if blind and any((sock.path, sock.ino) not in proven for sock, _ in suspected):
        pids = ", ".join(map(str, blind))
        raise OrphansUnknown(f"cannot read the open files of tmux server(s) {pids}")
    return found


# --- recover: SIGUSR1, only after proof -------------------------------------------------------


class RecoverAction(StrEnum):
    RECOVERED = "recovered"
    WOULD_RECOVER = "would-recover"  # --dry-run: every check passed
    REFUSED = "refused"  # a check failed: nothing was sent
    FAILED = "failed"  # SIGUSR1 was sent but the socket did not come back in time


class Recovery(NamedTuple):
    pid: int
    path: str
    action: RecoverAction
    reason: str

    @property
    def ok(self) -> bool:
        return self.action in (RecoverAction.RECOVERED, RecoverAction.WOULD_RECOVER)

    def to_json(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "path": display(self.path),
            "action": self.action.value,
            "reason": self.reason,
        }

    def line(self) -> str:
        return f"{self.action.value:13} pid {self.pid} {display(self.path)}: {self.reason}"


class RecoverReport(NamedTuple):
    """What `recover` did: one Recovery per orphan, or why orphans could not be looked for."""

    dry_run: bool
    recoveries: Sequence[Recovery] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.ok for r in self.recoveries)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "orphans": [r.to_json() for r in self.recoveries],
        }
        if self.error is not None:
            data["error"] = self.error
        return data

    def summary(self) -> str:
        """`recover: 2 orphaned server(s), 1 recovered, 0 would-recover, 1 refused, 0 failed`."""
        counts = dict.fromkeys(RecoverAction, 0)
        for r in self.recoveries:
            counts[r.action] += 1
        each = ", ".join(f"{n} {a.value}" for a, n in counts.items())
        return f"recover: {len(self.recoveries)} orphaned server(s), {each}"


def recover(
    orphans: Sequence[Orphan],
    *,
    pids: Iterable[int] = (),
    dry_run: bool = False,
    timeout: float = 5.0,
) -> list[Recovery]:
    """Bring the sockets of orphaned servers back with SIGUSR1, each only after proving (again,
    under tmux's own lock for the path) that the server still listens on its deleted file and
    that nothing else listens on the path. `pids` limits the work to those servers; a path that
    several orphans claim is refused unless exactly one of them is chosen."""
    wanted = frozenset(pids)
    chosen = [o for o in orphans if not wanted or o.pid in wanted]
    claims: dict[str, int] = {}
    for orphan in chosen:
        claims[orphan.path] = claims.get(orphan.path, 0) + 1
    results = []
    for orphan in chosen:
        if claims[orphan.path] > 1:
            others = ", ".join(str(o.pid) for o in chosen if o.path == orphan.path)
            reason = f"servers {others} all listened on this path; choose one with --pid"
            results.append(Recovery(orphan.pid, orphan.path, RecoverAction.REFUSED, reason))
        else:
            results.append(_recover_one(orphan, dry_run, timeout))
    return results


def _refused(orphan: Orphan, reason: str) -> Recovery:
    return Recovery(orphan.pid, orphan.path, RecoverAction.REFUSED, reason)


def _still_the_server(orphan: Orphan) -> str | None:
    """Why the process is no longer the orphan we found (or cannot take a signal), else None."""
    info = proc_info(orphan.pid)
    if info is None or info.state in ("Z", "X"):
        return "the server has exited"
    if info.name != TMUX_SERVER_NAME or info.started != orphan.started:
        return "the pid now belongs to another process"
    if info.euid != os.geteuid():
        return f"server runs as uid {info.euid}, not ours: run recover as that user"
    if info.state in ("T", "t"):
        return "the server is stopped (SIGSTOP): it would not handle SIGUSR1; SIGCONT it first"
    return None


def _socket_dir(orphan: Orphan, dry_run: bool) -> tuple[int | None, str]:
    """The orphan's directory under the sweep's safety rules. tmux's own `tmux-UID` directory,
    deleted with the socket, is created again (mode 0700) as a tmux client would."""
    from forge_tmux.sockdir import DirStatus, open_socket_dir  # noqa: PLC0415

    directory = os.path.dirname(orphan.path)
    fd, verdict = open_socket_dir(directory)
    if fd is not None:
        return fd, ""
    own_dir = os.path.basename(directory) == f"tmux-{os.geteuid()}"
    if verdict.status is not DirStatus.MISSING or not own_dir:
        return None, f"socket directory {display(directory)}: {verdict.reason}"
    if dry_run:
        return None, ""
    try:
        os.mkdir(directory, 0o700)
    except OSError as exc:
        return None, f"cannot create {display(directory)}: {exc.strerror or exc}"
    fd, verdict = open_socket_dir(directory)
    return fd, "" if fd is not None else f"socket directory {display(directory)}: {verdict.reason}"


def _path_taken(dir_fd: int | None, orphan: Orphan, bound: Sequence[BoundSocket]) -> str | None:
    """Why SIGUSR1 must not be sent now, or None. The orphan must still listen on its old inode
    at its path, and the file at the path (if any) must be a stale socket of ours that no socket
    is bound to (listening, or between bind and listen: tmux would unlink it under a server)."""
    from forge_tmux.probe import SocketState, classify  # noqa: PLC0415

    held = socket_inodes(orphan.pid) or frozenset()
    if not any(
        sock.listening
        and sock.path == orphan.path
        and sock.ino == orphan.inode
        and sock.sock_ino in held
        for sock in bound
    ):
        return "the kernel no longer shows the server listening on that path"
    directory, name = os.path.split(orphan.path)
    if dir_fd is None:
        return None  # the directory is gone (dry run): nothing can be at the path
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot examine the path: {exc.strerror or exc}"
    bound_here = [sock for sock in bound if (sock.dev, sock.ino) == (st.st_dev, st.st_ino)]
    probe, _ = classify(dir_fd, directory, name)
    if probe.state is SocketState.LIVE or any(sock.listening for sock in bound_here):
        return f"another server now listens on this path (pid {probe.peer_pid or '?'})"
    if bound_here:
        return "a socket is bound to this path (a server is starting there)"
    if probe.state is SocketState.STALE:
        return None  # a stale socket: tmux replaces it, exactly as a new server would
    return f"the path is taken: {probe.reason}"


def _recover_one(orphan: Orphan, dry_run: bool, timeout: float) -> Recovery:
    problem = _still_the_server(orphan)
    if problem:
        return _refused(orphan, problem)
    dir_fd, problem = _socket_dir(orphan, dry_run)
    if problem:
        return _refused(orphan, problem)
    try:
        if dry_run:
            problem = _path_taken(dir_fd, orphan, bound_sockets())
            if problem:
                return _refused(orphan, problem)
            return Recovery(
                orphan.pid,
                orphan.path,
                RecoverAction.WOULD_RECOVER,
                "would send SIGUSR1: the server listens on a deleted file and "
                "nothing else is at the path",
            )
        assert dir_fd is not None  # noqa: S101 - _socket_dir returns a fd or a problem
        return _signal_under_lock(dir_fd, orphan, timeout)
    except SockDiagUnavailable as exc:
        return _refused(orphan, f"cannot prove the path: {exc}")
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def _signal_under_lock(dir_fd: int, orphan: Orphan, timeout: float) -> Recovery:
    """tmux's lock for the path is held while the socket comes back, so a client that wants to
    start a server there waits and then finds the recovered one instead of starting a second.

    Once the server answers on its path again, the lock file is retired as tmux's own server
    does when it starts (it listens, then unlinks the lock file and releases the lock): a client
    that opened the old file waits on our lock and then connects to the recovered server. The
    release goes through `locks.HeldLocks`, the sweep's rule for every lock file it retires, so
    no client can take the unlinked file's lock without waiting first. Without that retirement
    the file would stay forever: SIGUSR1 is not a server start, and tmux removes a lock file
    only when it starts a server. Any other outcome leaves the file (tmux-facts: the safe choice).
    """
    import time  # noqa: PLC0415

    # The sweep's own lock helpers: the same file, flags and ownership rule as its removals.
    from forge_tmux.locks import HeldLocks, lock_is_ours, open_lock  # noqa: PLC0415
    from forge_tmux.paths import LOCK_SUFFIX  # noqa: PLC0415

    lock_name = os.path.basename(orphan.path) + LOCK_SUFFIX
    try:
        lock_fd = open_lock(dir_fd, lock_name, create=True)
    except OSError as exc:
        return _refused(orphan, f"cannot open tmux's lock file: {exc.strerror or exc}")
    retired = False
    try:
        if not lock_is_ours(lock_fd):
            return _refused(orphan, "tmux's lock file for this path is not ours")
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _refused(orphan, "a tmux client is starting a server on this path right now")
        result = _signal_and_wait(dir_fd, orphan, timeout)
        if result.action is RecoverAction.RECOVERED:
            retired = _unlink_held_lock(dir_fd, lock_name, lock_fd)
        return result
    finally:
        if retired:
            dir_st = os.fstat(dir_fd)
            held = HeldLocks((dir_st.st_dev, dir_st.st_ino))
            held.add(lock_fd, lock_name)
            # Bounded like the sweep's own waits (2 s by default): only a client stalled between
            # its open() and its flock() for that long could still take the old file's lock.
            held.release(time.monotonic() + min(timeout, 2.0))  # closes it
        else:
            os.close(lock_fd)  # releases the flock; the lock file stays


def _signal_and_wait(dir_fd: int, orphan: Orphan, timeout: float) -> Recovery:
    """Under the lock: prove once more, send SIGUSR1, wait for the server to answer on its path.

    The signal goes through a pidfd opened before the last identity check where the kernel has
    them (5.3+): a pid reused after that check cannot receive it."""
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    from forge_tmux.probe import SocketState, connect_path, probe_connect  # noqa: PLC0415

    directory, name = os.path.split(orphan.path)
    pidfd = _pidfd(orphan.pid)
    try:
        problem = _path_taken(dir_fd, orphan, bound_sockets()) or _still_the_server(orphan)
        if problem:
            return _refused(orphan, problem)
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, signal.SIGUSR1)
            else:
                os.kill(orphan.pid, signal.SIGUSR1)
        except ProcessLookupError:
            return _refused(orphan, "the server has exited")
    finally:
        if pidfd is not None:
            os.close(pidfd)
    target = connect_path(dir_fd, directory, name) or orphan.path
    deadline = time.monotonic() + timeout
    while True:
        probe = probe_connect(target)
        if probe.state is SocketState.LIVE and probe.peer_pid == orphan.pid:
            return Recovery(
                orphan.pid,
                orphan.path,
                RecoverAction.RECOVERED,
                "sent SIGUSR1; the server listens on its path again",
            )
        if time.monotonic() > deadline:
            return Recovery(
                orphan.pid,
                orphan.path,
                RecoverAction.FAILED,
                f"sent SIGUSR1 but the socket did not answer within {timeout:g} s ({probe.reason})",
            )
        time.sleep(0.02)


def _pidfd(pid: int) -> int | None:
    """A pidfd for `pid`, or None where the kernel (or Python) has none, or the pid is gone."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _unlink_held_lock(dir_fd: int, lock_name: str, lock_fd: int) -> bool:
    """Unlink `lock_name` if it is still the very file whose flock we hold."""
    held = os.fstat(lock_fd)
    try:
        on_disk = os.lstat(lock_name, dir_fd=dir_fd)
        if (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino):
            return False
        os.unlink(lock_name, dir_fd=dir_fd)
    except OSError:
        return False
    return True
