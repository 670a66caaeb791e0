"""Socket health: live, dead, hung or unknown for every tmux socket, read-only.

Liveness comes from the one classifier (`probe`): a connect() that can never start a server.
Only sockets with a listener are then asked `list-sessions` (a command that never starts a
server), in parallel with a bound, so N hung servers cost one timeout rather than N. A server
whose process is stopped (SIGSTOP, state T) is hung without waiting for the timeout.
Nothing here removes a file or starts a server; orphaned servers are found by `orphans`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from forge_tmux import __version__, tmux
from forge_tmux.errors import OrphansUnknown
from forge_tmux.orphans import Orphan, orphaned_servers
from forge_tmux.paths import LOCK_SUFFIX, display
from forge_tmux.probe import (
    Connector,
    Probe,
    SocketState,
    classify,
    connect_path,
    probe_connect,
)
from forge_tmux.sockdir import DirStatus, open_socket_dir

if TYPE_CHECKING:
    from forge_tmux.janitorstate import Labelled


class Health(StrEnum):
    LIVE = "live"  # answered list-sessions
    DEAD = "dead"  # a socket file with nobody listening (stale)
    HUNG = "hung"  # accepts connections but does not answer in time (or is stopped)
    UNKNOWN = "unknown"  # could not tell (permission, odd error): never a reason to act


class DirCheck(StrEnum):
    CHECKED = "checked"
    READ_ONLY = "read-only"  # not ours to act in (another user's, unsafe mode) but inspected
    MISSING = "missing"
    UNREADABLE = "unreadable"  # cannot be listed (a symlink, permissions): its sockets unseen


class DirHealth(NamedTuple):
    path: str
    status: DirCheck
    reason: str = ""


class SocketHealth(NamedTuple):
    path: str
    state: Health
    sessions: int | None  # for live servers that answered; None otherwise
    reason: str
    pid: int | None = None  # the server's pid (SO_PEERCRED), when something listens
    uid: int | None = None  # owner of the socket file


class HealthResult(NamedTuple):
    dirs: tuple[DirHealth, ...]
    sockets: tuple[SocketHealth, ...]
    orphans: tuple[Orphan, ...] = ()
    orphan_error: str = ""  # why orphans could not be looked for ("" when they were)
    timestamp: float = 0.0  # time.time() of the run: collect() sets it
    duration_s: float = 0.0
    # Directories the operator named (--dir) that do not exist: a typo in a monitoring command
    # must not read as "all fine", so these make the result incomplete.
    named_missing: tuple[str, ...] = ()

    def count(self, state: Health) -> int:  # tuple.count: a result is never used as a sequence
        return sum(1 for s in self.sockets if s.state is state)

    @property
    def sessions(self) -> int:
        return sum(s.sessions or 0 for s in self.sockets)

    @property
    def problem(self) -> bool:
        """What `--check` fails on: a dead socket or a hung server."""
        return any(s.state in (Health.DEAD, Health.HUNG) for s in self.sockets)

    @property
    def incomplete(self) -> bool:
        """Something could not be checked: an unreadable directory, an unknown socket, orphans."""
        return (
            any(d.status is DirCheck.UNREADABLE for d in self.dirs)
            or self.count(Health.UNKNOWN) > 0
            or bool(self.orphan_error)
            or bool(self.named_missing)
        )

    def to_json(self) -> dict[str, object]:
        """`health --format json` (see the module-level to_json)."""
        return to_json(self)


def all_user_dirs(root: str) -> list[str]:
    """Every `tmux-*` directory under the socket root (other users' are inspected read-only)."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [os.path.join(root, n) for n in names if n.startswith("tmux-")]


def process_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, T, t, D, Z, ...), None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def _open_dir(path: str) -> tuple[int | None, DirHealth]:
    """The sweep's directory rules decide whether a directory is ours; one that is not (another
    user's, or ours with unsafe modes) is still inspected read-only, never through a symlink."""
    fd, verdict = open_socket_dir(path)
    if fd is not None:
        return fd, DirHealth(path, DirCheck.CHECKED)
    if verdict.status is DirStatus.MISSING:
        return None, DirHealth(path, DirCheck.MISSING, verdict.reason)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None, DirHealth(path, DirCheck.UNREADABLE, verdict.reason)
    return fd, DirHealth(path, DirCheck.READ_ONLY, verdict.reason)


def _probe_entry(
    dir_fd: int, dir_path: str, name: str, connector: Connector
) -> tuple[Probe, int | None] | None:
    """The classifier's verdict on one entry and its owner; None for what is not a socket."""
    probe, st = classify(dir_fd, dir_path, name, connector=connector)
    if st is None:
        return None  # vanished between listing and looking
    if probe.state is SocketState.SKIPPED:
        import stat  # noqa: PLC0415

        if not stat.S_ISSOCK(st.st_mode):
            return None  # lock files, symlinks, anything else: not a socket to report
        # Another user's socket: the classifier will not judge it for acting, but a connect()
        # is harmless and says whether a server is there (as non-root it may say EACCES).
        target = connect_path(dir_fd, dir_path, name)
        if target is None:
            return Probe(SocketState.UNKNOWN, "path longer than 107 bytes"), st.st_uid
        probe = probe_connect(target, connector=connector)
    return probe, st.st_uid


# Session ids (`$3`) rather than names: a name may hold anything, an id is one line.
LIST_SESSIONS = ("list-sessions", "-F", "#{session_id}")
_SESSION_ID = re.compile(r"^\$\d+$")


def query(
    path: str,
    probe: Probe,
    uid: int | None,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> SocketHealth:
    """Ask a listening server for its sessions; `list-sessions` never starts a server. `env`:
    tmux's environment, when the caller has computed it once for many queries."""
    if probe.peer_pid is not None and process_state(probe.peer_pid) in ("T", "t"):
        reason = f"server process {probe.peer_pid} is stopped"
        return SocketHealth(path, Health.HUNG, None, reason, probe.peer_pid, uid)
    try:
        result = tmux.run(LIST_SESSIONS, socket_path=path, timeout=timeout, env=env)
    except tmux.TmuxNotFound as exc:
        return SocketHealth(path, Health.UNKNOWN, None, str(exc), probe.peer_pid, uid)
    if result.timed_out:
        reason = f"no answer to list-sessions within {timeout:g} s"
        return SocketHealth(path, Health.HUNG, None, reason, probe.peer_pid, uid)
    if result.ok:
        sessions = sum(1 for line in result.stdout.splitlines() if _SESSION_ID.match(line))
        return SocketHealth(path, Health.LIVE, sessions, "answered", probe.peer_pid, uid)
    message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
    lowered = message.lower()
    if "protocol version mismatch" in lowered or "access not allowed" in lowered:
        return SocketHealth(path, Health.LIVE, None, message, probe.peer_pid, uid)
    if result.error_kind is tmux.TmuxErrorKind.SOCKET:
        # It went away between the probe and the query: ask the classifier again.
        again = probe_connect(path)
        if again.state is SocketState.STALE:
            return SocketHealth(path, Health.DEAD, None, "server exited while being queried")
    return SocketHealth(path, Health.UNKNOWN, None, message, probe.peer_pid, uid)


def _scan(dirs: Iterable[str]) -> tuple[list[DirHealth], list[tuple[str, Probe, int | None]]]:
    checked: list[DirHealth] = []
    found: list[tuple[str, Probe, int | None]] = []
    with Connector() as connector:  # one socket for the scan's connects (see probe.Connector)
        for path in dict.fromkeys(map(os.path.abspath, dirs)):  # each directory once, in order
            _scan_dir(path, connector, checked, found)
    return checked, found


def _scan_dir(
    path: str,
    connector: Connector,
    checked: list[DirHealth],
    found: list[tuple[str, Probe, int | None]],
) -> None:
    fd, verdict = _open_dir(path)
    if fd is None:
        checked.append(verdict)
        return
    try:
        names = sorted(os.listdir(fd))
    except OSError as exc:
        checked.append(DirHealth(path, DirCheck.UNREADABLE, exc.strerror or str(exc)))
        os.close(fd)
        return
    try:
        for name in names:
            if name.endswith(LOCK_SUFFIX):
                continue
            judged = _probe_entry(fd, path, name, connector)
            if judged is not None:
                found.append((os.path.join(path, name), *judged))
    finally:
        os.close(fd)
    checked.append(verdict)


def _verdict(path: str, probe: Probe, uid: int | None) -> SocketHealth | None:
    """The health of a socket the probe settled by itself; None when tmux must be asked."""
    if probe.state is SocketState.STALE:
        return SocketHealth(path, Health.DEAD, None, probe.reason, None, uid)
    if probe.state is SocketState.LIVE:
        return None
    return SocketHealth(path, Health.UNKNOWN, None, probe.reason, None, uid)


def _orphans(
    checked: Iterable[DirHealth], orphan_dirs: Iterable[str], orphan_uid: int | None
) -> tuple[list[Orphan], str]:
    """The orphaned servers of the checked directories, or why they could not be looked for."""
    within = frozenset({*(d.path for d in checked), *map(os.path.abspath, orphan_dirs)})
    try:
        return orphaned_servers(within, uid=os.geteuid() if orphan_uid == -1 else orphan_uid), ""
    except OrphansUnknown as exc:
        return [], str(exc)


def collect(
    dirs: Sequence[str],
    *,
    timeout: float = 2.0,
    parallel: int = 32,
    orphans: bool = True,
    orphan_uid: int | None = -1,
    orphan_dirs: Iterable[str] = (),
) -> HealthResult:
    """The health of every socket in `dirs`, and the orphaned servers of those directories.

    `orphan_uid`: whose servers to look at (-1: the effective user; None: everybody's).
    `orphan_dirs`: further directories whose orphans count (a deleted `tmux-UID` of another user).
    """
    started = time.monotonic()
    stamp = time.time()
    checked, found = _scan(dirs)
    sockets: list[SocketHealth] = []
    to_ask: list[tuple[str, Probe, int | None]] = []
    for path, probe, uid in found:
        verdict = _verdict(path, probe, uid)
        if verdict is None:
            to_ask.append((path, probe, uid))
        else:
            sockets.append(verdict)
    # Before the servers are asked, not while: a netlink dump and an lstat per listener take a
    # millisecond alone, but tens of them competing with the query threads for the GIL.
    orphan_list, orphan_error = _orphans(checked, orphan_dirs, orphan_uid) if orphans else ([], "")
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(to_ask) or 1))) as pool:
        # The environment once, not once a query: reading os.environ is a third of the Python
        # work of each tmux call, and a hundred of them compete for one interpreter lock.
        env = tmux.clean_env() if to_ask else None
        futures = [
            pool.submit(query, path, probe, uid, timeout, env) for path, probe, uid in to_ask
        ]
        sockets.extend(f.result() for f in futures)
    sockets.sort(key=lambda s: s.path)
    return HealthResult(
        dirs=tuple(checked),
        sockets=tuple(sockets),
        orphans=tuple(orphan_list),
        orphan_error=orphan_error,
        timestamp=stamp,
        duration_s=time.monotonic() - started,
    )


# --- renderers: pure functions of the result -------------------------------------------------


def render_row(result: HealthResult) -> str:
    """One line for a fleet-probe summary; orphans only when there are some."""
    row = (
        f"tmux sockets: {result.count(Health.LIVE)} live, {result.count(Health.DEAD)} dead, "
        f"{result.count(Health.HUNG)} hung, {result.count(Health.UNKNOWN)} unknown"
    )
    if result.orphans:
        row += f", {len(result.orphans)} orphaned"
    return row


def to_json(result: HealthResult) -> dict[str, object]:
    return {
        "live": result.count(Health.LIVE),
        "dead": result.count(Health.DEAD),
        "hung": result.count(Health.HUNG),
        "unknown": result.count(Health.UNKNOWN),
        "orphaned": len(result.orphans),
        "sessions": result.sessions,
        "sockets": [
            {
                "path": display(s.path),
                "state": s.state.value,
                "sessions": s.sessions,
                "reason": s.reason,
                "pid": s.pid,
                "uid": s.uid,
            }
            for s in result.sockets
        ],
        "orphans": [
            {"pid": o.pid, "uid": o.uid, "path": display(o.path), "reason": o.reason}
            for o in result.orphans
        ],
        "orphan_error": result.orphan_error or None,
        "dirs": [
            {"path": display(d.path), "status": d.status.value, "reason": d.reason}
            for d in result.dirs
        ],
        "timestamp": round(result.timestamp, 3),
        "duration_ms": round(result.duration_s * 1000, 3),
    }


def render_prometheus(result: HealthResult, janitor: Sequence[Labelled] = ()) -> str:
    """Text exposition format (node_exporter's textfile collector). No per-socket series: socket
    names come and go with every spawn, and a label per name would grow without bound. `janitor`:
    the sweep records to export (see janitorstate), with the build info always."""
    lines = [
        "# HELP forge_tmux_sockets tmux sockets by state (live, dead, hung, unknown).",
        "# TYPE forge_tmux_sockets gauge",
    ]
    lines += [f'forge_tmux_sockets{{state="{h.value}"}} {result.count(h)}' for h in Health]
    gauges = (
        ("forge_tmux_sessions", "Sessions on live tmux servers that answered.", result.sessions),
        (
            "forge_tmux_orphaned_servers",
            "tmux servers alive whose socket file is gone (forge-tmux recover).",
            len(result.orphans),
        ),
        (
            "forge_tmux_health_complete",
            "1 when every directory, socket and the orphan check could be examined.",
            int(not result.incomplete),
        ),
        (
            "forge_tmux_health_duration_seconds",
            "Wall time of the health check.",
            round(result.duration_s, 6),
        ),
        (
            "forge_tmux_health_timestamp_seconds",
            "Unix time the health check ran.",
            round(result.timestamp, 3),
        ),
    )
    for name, help_text, value in gauges:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    from forge_tmux.janitorstate import exposition  # noqa: PLC0415 - prometheus only

    lines += exposition(janitor, __version__)
    return "\n".join(lines) + "\n"
