"""Orphaned tmux servers: a `tmux: server` process alive whose socket file is gone.

A /tmp cleaner or a careless `rm` deletes the socket of a live, idle server; its sessions then
look lost although the server runs. SIGUSR1 makes tmux unlink whatever is at its path and bind
again, so it must only be sent after proving which path the server listened on and that nothing
else listens there now.

The proof comes from `ss -xlpe` (the one door to `ss` lives here): for every listening unix socket
it shows the bound path, the inode of the file that bind() created (`ino:`) and the owning pids.
A server is orphaned when the file at its bound path is gone or is another inode. psutil only lists
the `tmux: server` processes; its unix connections keep showing a path after the file is deleted
and mix in accepted client connections, so they cannot prove ownership.
psutil is imported inside the functions that use it: never on the sweep's import path.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from forge_tmux.paths import display

TMUX_SERVER_NAME = "tmux: server"


class SsUnavailable(Exception):
    """`ss` (iproute2) is missing or failed: orphans cannot be proven, so none are acted on."""


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening unix socket as `ss -xlpe` shows it."""

    path: str  # the path given to bind(); the file may be gone since
    inode: int  # inode of the file bind() created (st_ino of the path while it is that file)
    dev: int | None  # st_dev of that file, decoded from ss's `dev:` (None if not given)
    pids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TmuxServer:
    pid: int
    uid: int
    create_time: float  # guards against pid reuse between finding and signalling


@dataclass(frozen=True, slots=True)
class Orphan:
    pid: int
    uid: int
    path: str  # where the server listened (bound) and where SIGUSR1 would put its socket back
    inode: int  # the inode of its own (deleted) socket file
    reason: str  # what is at the path now: nothing, or another file
    create_time: float = 0.0


# `u_str LISTEN 0 128 /tmp/tmux-0/a 9872 * 0 users:(("tmux: server",pid=7653,fd=6)) <-> ino:2146673
# dev:0/65024 peers:` (-H: no header). The path may hold spaces, so it is matched lazily up to the
# socket's own inode column.
_LINE = re.compile(
    r"^u_(?:str|seq)\s+LISTEN\s+\d+\s+\d+\s+(?P<path>.+?)\s+\d+\s+\*\s+\d+\s*"
    r"(?P<procs>users:\(.*?\)\))?\s*(?:<->\s*)?ino:(?P<ino>\d+)\s+dev:(?P<maj>\d+)/(?P<min>\d+)"
)
_PROC = re.compile(r'\("(?:[^"\\]|\\.)*",pid=(\d+),fd=\d+\)')


def decode_ss_dev(major: int, minor: int) -> int:
    """st_dev from ss's `dev:A/B`.

    The kernel reports the superblock's dev_t in its own encoding (major << 20 | minor) and ss
    splits it with glibc's major()/minor(), which expect the user-space encoding; so `dev:0/65024`
    is device 254:0. Undo glibc's split, then re-encode as os.stat() does.
    """
    kernel = (minor & 0xFF) | ((major & 0xFFF) << 8) | ((minor >> 8) << 20)
    return os.makedev(kernel >> 20, kernel & 0xFFFFF)


def parse_ss(text: str) -> list[Listener]:
    """Listening unix sockets bound to a path (abstract and unbound ones are left out)."""
    listeners = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        path = match["path"]
        inode = int(match["ino"])
        if not path.startswith("/") or inode == 0:
            continue  # abstract (`@...`), unbound (`*`) or relative: nothing to prove on disk
        pids = tuple(int(p) for p in _PROC.findall(match["procs"] or ""))
        dev = decode_ss_dev(int(match["maj"]), int(match["min"]))
        listeners.append(Listener(path, inode, dev, pids))
    return listeners


def ss_argv() -> tuple[str, ...]:
    return ("ss", "-x", "-l", "-p", "-e", "-H")


def ss_listeners(timeout: float = 5.0) -> list[Listener]:
    """Run `ss -xlpeH` once. As non-root, ss shows the pids of our own processes only."""
    binary = shutil.which("ss")
    if binary is None:
        raise SsUnavailable("ss (iproute2) not found on PATH")
    argv = (binary, *ss_argv()[1:])
    try:
        proc = subprocess.run(
            argv,
            env={**os.environ, "LC_ALL": "C"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise SsUnavailable(f"ss did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise SsUnavailable(f"cannot run ss: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        raise SsUnavailable(f"ss failed: {proc.stderr.strip() or proc.returncode}")
    return parse_ss(proc.stdout)


def tmux_servers(uid: int | None) -> list[TmuxServer]:
    """Every running `tmux: server` process, of user `uid` only unless it is None."""
    import psutil  # noqa: PLC0415 - see the module docstring

    servers = []
    for proc in psutil.process_iter(["name", "uids", "create_time", "status"]):
        info = proc.info
        if info.get("name") != TMUX_SERVER_NAME or info.get("uids") is None:
            continue
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        owner = int(info["uids"].effective)
        if uid is None or owner == uid:
            servers.append(TmuxServer(proc.pid, owner, float(info["create_time"] or 0.0)))
    return servers


def what_is_at(path: str, listener: Listener) -> str | None:
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
    same_dev = listener.dev is None or st.st_dev == listener.dev
    if st.st_ino == listener.inode and same_dev:
        return None
    kind = "socket" if stat.S_ISSOCK(st.st_mode) else "file that is not a socket"
    return f"path now holds another {kind} (inode {st.st_ino})"


def find_orphans(
    servers: Iterable[TmuxServer],
    listeners: Sequence[Listener],
    within: frozenset[str] | None = None,
) -> list[Orphan]:
    """Servers whose listening socket's file is gone or replaced (pure but for lstat).

    `within`: only paths whose directory is one of these (the directories being checked).
    A server ss shows no listener for is not reported: nothing proves where it listened.
    """
    by_pid: dict[int, list[Listener]] = {}
    for listener in listeners:
        for pid in listener.pids:
            by_pid.setdefault(pid, []).append(listener)
    orphans = []
    for server in servers:
        for listener in by_pid.get(server.pid, ()):
            if within is not None and os.path.dirname(listener.path) not in within:
                continue
            reason = what_is_at(listener.path, listener)
            if reason is not None:
                orphans.append(
                    Orphan(
                        server.pid,
                        server.uid,
                        listener.path,
                        listener.inode,
                        reason,
                        server.create_time,
                    )
                )
    return sorted(orphans, key=lambda o: (o.path, o.pid))


def orphaned_servers(
    within: frozenset[str] | None,
    *,
    uid: int | None,
    known_pids: frozenset[int] = frozenset(),
    timeout: float = 5.0,
) -> list[Orphan]:
    """Find orphans. `known_pids` are servers already seen answering on a socket file of theirs
    (SO_PEERCRED of a live probe); when no other server exists, ss is not run at all."""
    candidates = [s for s in tmux_servers(uid) if s.pid not in known_pids]
    if not candidates:
        return []
    return find_orphans(candidates, ss_listeners(timeout), within)


# --- recover: SIGUSR1, only after proof -------------------------------------------------------


class RecoverAction(StrEnum):
    RECOVERED = "recovered"
    WOULD_RECOVER = "would-recover"  # --dry-run: every check passed
    REFUSED = "refused"  # a check failed: nothing was sent
    FAILED = "failed"  # SIGUSR1 was sent but the socket did not come back in time


@dataclass(frozen=True, slots=True)
class Recovery:
    pid: int
    path: str
    action: RecoverAction
    reason: str

    @property
    def ok(self) -> bool:
        return self.action in (RecoverAction.RECOVERED, RecoverAction.WOULD_RECOVER)


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
    import psutil  # noqa: PLC0415 - see the module docstring

    try:
        proc = psutil.Process(orphan.pid)
        name, status, created = proc.name(), proc.status(), proc.create_time()
        owner = proc.uids().effective
    except psutil.Error:
        return "the server has exited"
    if name != TMUX_SERVER_NAME or abs(created - orphan.create_time) > 0.01:
        return "the pid now belongs to another process"
    if owner != os.geteuid():
        return f"server runs as uid {owner}, not ours: run recover as that user"
    if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
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


def _path_taken(dir_fd: int | None, orphan: Orphan, listeners: Sequence[Listener]) -> str | None:
    """Why SIGUSR1 must not be sent now, or None. The file at the path (if any) must be a stale
    socket of ours that no listener owns, and the orphan must still listen on its old inode."""
    from forge_tmux.probe import SocketState, classify  # noqa: PLC0415

    if not any(
        orphan.pid in lst.pids and lst.path == orphan.path and lst.inode == orphan.inode
        for lst in listeners
    ):
        return "ss no longer shows the server listening on that path"
    directory, name = os.path.split(orphan.path)
    if dir_fd is None:
        return None  # the directory is gone (dry run): nothing can be at the path
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot examine the path: {exc.strerror or exc}"
    owners = sorted({p for lst in listeners if lst.inode == st.st_ino for p in lst.pids})
    if owners:
        return f"another server now listens on this path (pid {', '.join(map(str, owners))})"
    probe, _ = classify(dir_fd, directory, name)
    if probe.state is SocketState.STALE:
        return None  # a stale socket: tmux replaces it, exactly as a new server would
    if probe.state is SocketState.LIVE:
        return f"another server now listens on this path (pid {probe.peer_pid or '?'})"
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
            problem = _path_taken(dir_fd, orphan, ss_listeners())
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
    except SsUnavailable as exc:
        return _refused(orphan, f"cannot prove the path: {exc}")
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def _signal_under_lock(dir_fd: int, orphan: Orphan, timeout: float) -> Recovery:
    """tmux's lock for the path is held while the socket comes back, so a client that wants to
    start a server there waits and then finds the recovered one instead of starting a second."""
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    # The sweep's own lock helpers: the same file, flags and ownership rule as its removals.
    from forge_tmux.locks import LOCK_SUFFIX, lock_is_ours, open_lock  # noqa: PLC0415
    from forge_tmux.probe import SocketState, connect_path, probe_connect  # noqa: PLC0415

    directory, name = os.path.split(orphan.path)
    try:
        lock_fd = open_lock(dir_fd, name + LOCK_SUFFIX, create=True)
    except OSError as exc:
        return _refused(orphan, f"cannot open tmux's lock file: {exc.strerror or exc}")
    try:
        if not lock_is_ours(lock_fd):
            return _refused(orphan, "tmux's lock file for this path is not ours")
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _refused(orphan, "a tmux client is starting a server on this path right now")
        problem = _path_taken(dir_fd, orphan, ss_listeners()) or _still_the_server(orphan)
        if problem:
            return _refused(orphan, problem)
        os.kill(orphan.pid, signal.SIGUSR1)
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
                    f"sent SIGUSR1 but the socket did not answer within {timeout:g} s"
                    f" ({probe.reason})",
                )
            time.sleep(0.02)
    finally:
        os.close(lock_fd)  # releases the flock; the lock file stays, as tmux-facts advise
