"""Sessions that come back after a reboot, and never the ones that ended on purpose.

What forge-tmux spawned is marked on the session itself: the harness sets the user option
`@forge_tmux` (name, argument vector, working directory, profile) right after it verified the
session. `save` lists the live servers (read-only, `sessions.list_sessions`) and writes those
sessions to `sessions.json` in the state directory, atomically (temp file, fsync, rename) under an
flock, so a crash leaves the old snapshot or the new one, never half.

Telling a deliberate end from a crash: the socket file cannot (tmux 3.3a leaves a stale file in
both cases). So the harness also gives each server `exit-empty off` and a `session-closed` hook
that runs `forge-tmux session-closed` (a `run-shell`, which completes while the server still runs;
`exit-empty off` keeps the server alive for it when the last session ends by itself, and the
hook's `kill-server` then ends the empty server). A crashed or SIGKILLed server runs no hook, and
neither does one stopped by SIGTERM, so:
- a session killed or exited leaves the snapshot at once (the hook), or at the next save (its
  server answers and no longer has it); `forge-tmux kill` and `/kill` remove it themselves;
- a session whose server crashed, or was lost with the machine, stays: its socket is dead or gone.
At shutdown the pane processes get SIGTERM together with their server, and their sessions may
close first, running the hook; `save --shutdown` (run before the sessions' scopes stop) therefore
sets `shutdown` in the snapshot, and the hook changes nothing while it is set. The next save or
restore clears it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from forge_tmux import tmux
from forge_tmux.atomic import write_atomic
from forge_tmux.paths import state_dir
from forge_tmux.probe import SocketState, probe_path

if TYPE_CHECKING:
    from forge_tmux.config import Config
    from forge_tmux.sessions import Session
    from forge_tmux.spawn import SpawnRequest

log = logging.getLogger(__name__)

VERSION: Final = 1
FILE_NAME: Final = "sessions.json"
LAST_RESTORE: Final = "restore-last.json"  # what the last restore did, for the boot summary
MARK_OPTION: Final = "@forge_tmux"
# The hook's index in the session-closed array: ours, so an operator's own hooks stay.
HOOK_INDEX: Final = 71
# What may be baked into the hook's shell command unquoted: no blanks, quotes, `#` (a tmux
# format), `$`, `;` or anything else a shell or tmux would read.
_PLAIN = re.compile(r"\A[A-Za-z0-9_./+@%=:,-]+\Z")


@dataclass(frozen=True, slots=True)
class Entry:
    name: str  # as the user gave it (spawn makes it safe again, to the same session)
    session: str
    socket_name: str
    argv: tuple[str, ...]
    cwd: str
    profile: str | None = None
    wait_for: str | None = None
    saved_at: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return self.socket_name, self.session

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "session": self.session,
            "socket_name": self.socket_name,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "profile": self.profile,
            "wait_for": self.wait_for,
            "saved_at": round(self.saved_at, 3),
        }

    @classmethod
    def from_json(cls, data: Any) -> Entry | None:
        """An entry from the file or a session's mark; None for anything malformed."""
        if not isinstance(data, dict):
            return None
        try:
            argv = data.get("argv", [])
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                return None
            texts = [data["name"], data["session"], data["socket_name"], data["cwd"]]
            if not all(isinstance(t, str) and t for t in texts):
                return None
            optional = [data.get("profile"), data.get("wait_for")]
            if not all(o is None or isinstance(o, str) for o in optional):
                return None
            saved = data.get("saved_at", 0.0)
            return cls(
                data["name"],
                data["session"],
                data["socket_name"],
                tuple(argv),
                data["cwd"],
                data.get("profile"),
                data.get("wait_for"),
                float(saved) if isinstance(saved, int | float) else 0.0,
            )
        except KeyError:
            return None


@dataclass
class Snapshot:
    entries: list[Entry] = field(default_factory=list)
    saved_at: float = 0.0
    shutdown: bool = False  # saved by the shutdown unit: session-closed hooks change nothing

    def to_json(self) -> dict[str, object]:
        return {
            "version": VERSION,
            "saved_at": round(self.saved_at, 3),
            "shutdown": self.shutdown,
            "sessions": [e.to_json() for e in self.entries],
        }


def path(directory: str | None = None) -> str:
    return os.path.join(directory or state_dir(), FILE_NAME)


def load(file: str) -> Snapshot:
    """The snapshot at `file`; missing or unreadable is empty, malformed entries are skipped."""
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return Snapshot()
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return Snapshot()
    raw = data.get("sessions")
    entries = [e for e in map(Entry.from_json, raw if isinstance(raw, list) else []) if e]
    saved = data.get("saved_at", 0.0)
    return Snapshot(
        entries,
        float(saved) if isinstance(saved, int | float) else 0.0,
        data.get("shutdown") is True,
    )


@contextlib.contextmanager
def editing(directory: str | None = None, *, create: bool = False) -> Iterator[Snapshot]:
    """Read, change and atomically rewrite the snapshot under its flock. Without `create`, a
    snapshot that does not exist stays so (what is yielded is empty and not written): only a
    save makes the file, so a machine that never spawned anything gets no state files."""
    file = path(directory)
    if not create and not os.path.exists(file):
        yield Snapshot()
        return
    os.makedirs(os.path.dirname(file), mode=0o700, exist_ok=True)
    fd = os.open(file + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        snap = load(file)
        yield snap
        write_atomic(file, json.dumps(snap.to_json(), ensure_ascii=False, indent=1) + "\n")
    finally:
        os.close(fd)


# ---- marking what the harness spawned --------------------------------------------------------


def mark_value(request: SpawnRequest) -> str:
    """The `@forge_tmux` value: one JSON line (no newline, so list-sessions stays one line)."""
    return json.dumps(
        {
            "name": request.name,
            "session": request.session,
            "socket_name": request.socket_name,
            "argv": list(request.command),
            "cwd": request.cwd or os.getcwd(),
            "profile": request.profile,
            "wait_for": request.wait_for,
        },
        ensure_ascii=True,
        separators=(",", ":"),
    )


def hook_command(socket_path: str, executable: str, directory: str) -> str | None:
    """The tmux command list run at session-closed; None when a path is not plain enough to be
    written into a shell command without quoting (then no hook: kills are still recorded by
    `forge-tmux kill`, exits at the next save)."""
    if not all(_PLAIN.match(p) for p in (socket_path, executable, directory)):
        return None
    record = (
        # -I: the session's working directory (a checkout, say) never shadows forge_tmux.
        f"FORGE_TMUX_STATE_DIR={directory} {executable} -I -m forge_tmux session-closed "
        f"--socket-path {socket_path} >/dev/null 2>&1"
    )
    # `#{S:x}` is empty when no session is left: then end the server that exit-empty keeps.
    return f"run-shell '{record}' ; if-shell -F '#{{S:x}}' '' kill-server"


def mark_args(request: SpawnRequest, executable: str) -> tuple[str, ...]:
    """One tmux call (three commands) that marks a fresh session as forge-tmux's (pure)."""
    args: tuple[str, ...] = (
        "set-option",
        "-t",
        f"={request.session}:",  # a pane target: `=NAME` alone is no pane to set-option
        MARK_OPTION,
        mark_value(request),
    )
    hook = hook_command(request.socket_path, executable, state_dir())
    if hook is None:
        log.warning("not recording deliberate ends of %s: a path is not plain", request.session)
        return args
    return (
        *args,
        ";",
        "set-option",
        "-g",
        "exit-empty",
        "off",
        ";",
        "set-hook",
        "-g",
        f"session-closed[{HOOK_INDEX}]",
        hook,
    )


# ---- save, forget, closed --------------------------------------------------------------------


def _fields(entry: Entry) -> dict[str, Any]:
    return {f: getattr(entry, f) for f in Entry.__slots__}


def merge(old: Sequence[Entry], live: Sequence[Entry], answered: set[str]) -> list[Entry]:
    """The new snapshot (pure): every live spawned session, plus the old entries whose server
    did not answer (crashed, lost with the machine, hung: kept), minus the old entries whose
    server answered without them (they exited or were killed)."""
    kept = {e.key: e for e in live}
    for entry in old:
        if entry.key not in kept and entry.socket_name not in answered:
            kept[entry.key] = entry
    return sorted(kept.values(), key=lambda e: e.key)


@dataclass(frozen=True, slots=True)
class SaveResult:
    file: str
    saved: tuple[Entry, ...]
    live: int  # of them running now; the rest are kept from before (their server is gone)
    shutdown: bool

    def to_json(self) -> dict[str, object]:
        return {
            "ok": True,
            "file": self.file,
            "sessions": [e.to_json() for e in self.saved],
            "live": self.live,
            "kept": len(self.saved) - self.live,
            "shutdown": self.shutdown,
        }

    def message(self) -> str:
        kept = len(self.saved) - self.live
        return f"saved {self.live} running session(s), kept {kept} not running, to {self.file}"


def save(dirs: Sequence[str], *, timeout: float = 2.0, shutdown: bool = False) -> SaveResult:
    from forge_tmux import sessions  # noqa: PLC0415

    listing = sessions.list_sessions(dirs, timeout=timeout)
    now = time.time()
    live = [e for e in (_entry(s, now) for s in listing.sessions if s.spawned) if e is not None]
    answered = {os.path.basename(p) for p in listing.answered}
    if not live and not os.path.exists(path()):
        # Nothing spawned and nothing saved before: leave no file behind (the sweep timer runs
        # this on machines that never spawn anything).
        return SaveResult(path(), (), 0, shutdown)
    with editing(create=True) as snap:
        snap.entries = merge(snap.entries, live, answered)
        snap.saved_at = now
        snap.shutdown = shutdown
        saved = tuple(snap.entries)
    return SaveResult(path(), saved, len(live), shutdown)


def _entry(session: Session, now: float) -> Entry | None:
    try:
        data = json.loads(session.mark)
    except ValueError:
        return None
    entry = Entry.from_json(data)
    if entry is None or entry.session != session.name:
        return None
    if entry.socket_name != session.socket_name:
        return None
    return Entry(**{**_fields(entry), "saved_at": now})


def forget(socket_name: str, session: str) -> bool:
    """Remove one entry at once (`kill`, `/kill`); True when there was one."""
    with editing() as snap:
        before = len(snap.entries)
        snap.entries = [e for e in snap.entries if e.key != (socket_name, session)]
        return len(snap.entries) != before


def session_closed(socket_path: str, *, timeout: float = 2.0) -> int:
    """The hook: drop the entries of `socket_path` whose session the server no longer has.
    Nothing while a shutdown save is in force, or when the server cannot say (never guess)."""
    socket_name = os.path.basename(socket_path)
    if probe_path(socket_path).state is not SocketState.LIVE:
        return 0
    listed = tmux.run(
        ("list-sessions", "-F", "#{session_name}"), socket_path=socket_path, timeout=timeout
    )
    if listed.timed_out or (listed.returncode != 0 and "no sessions" not in listed.stderr):
        return 0
    present = set(listed.stdout.splitlines()) if listed.ok else set()
    with editing() as snap:
        if snap.shutdown:
            return 0
        before = len(snap.entries)
        snap.entries = [
            e for e in snap.entries if e.socket_name != socket_name or e.session in present
        ]
        return before - len(snap.entries)


# ---- restore ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreResult:
    restored: tuple[str, ...]
    already_running: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]  # (name, reason)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, object]:
        return {
            "restored": list(self.restored),
            "already_running": list(self.already_running),
            "failed": [{"name": n, "reason": r} for n, r in self.failed],
        }

    def lines(self) -> list[str]:
        head = (
            f"restore: {len(self.restored)} restored, {len(self.already_running)} already "
            f"running, {len(self.failed)} failed"
        )
        return [
            head,
            *(f"  restored {n}" for n in self.restored),
            *(f"  already running {n}" for n in self.already_running),
            *(f"  FAILED {n}: {r}" for n, r in self.failed),
        ]


def restore(cfg: Config, socket_dir: str | None = None) -> RestoreResult:
    """Re-spawn every snapshot entry through the harness (pre-flight sweep, verify, retry once);
    a session that already runs is never replaced. Clears the shutdown mark."""
    from forge_tmux import spawn  # noqa: PLC0415
    from forge_tmux.errors import UsageError  # noqa: PLC0415

    snap = load(path())
    restored: list[str] = []
    running: list[str] = []
    failed: list[tuple[str, str]] = []
    for entry in snap.entries:
        try:
            request = spawn.request_for(
                cfg,
                entry.name,
                entry.argv,
                socket_name=entry.socket_name,
                wait_for=entry.wait_for,
                socket_dir=socket_dir,
                cwd=entry.cwd,
                profile=entry.profile,
            )
        except UsageError as exc:
            failed.append((entry.name, str(exc)))
            continue
        if request.session != entry.session:
            failed.append(
                (entry.name, f"the name now maps to {request.session}, not {entry.session}")
            )
            continue
        if not os.path.isdir(entry.cwd):
            failed.append((entry.name, f"working directory {entry.cwd} does not exist"))
            continue
        result = spawn.spawn_for(cfg, request)
        if result.outcome is spawn.Outcome.SPAWNED:
            restored.append(entry.name)
        elif result.outcome is spawn.Outcome.ALREADY_RUNNING:
            running.append(entry.name)
        else:
            failed.append((entry.name, result.error or result.message))
    with editing() as current:
        current.shutdown = False
    done = RestoreResult(tuple(restored), tuple(running), tuple(failed))
    report = {"at": time.time(), **done.to_json()}
    try:
        os.makedirs(state_dir(), mode=0o700, exist_ok=True)
        write_atomic(os.path.join(state_dir(), LAST_RESTORE), json.dumps(report) + "\n")
    except OSError as exc:  # only the boot summary misses it
        log.warning("cannot record the restore for the boot summary: %s", exc)
    return done


def last_restore(since: float) -> list[str]:
    """The lines of the restore that ran after `since` (epoch), for the boot summary; [] when
    none did (restore is off, or it ran in an earlier boot)."""
    try:
        with open(os.path.join(state_dir(), LAST_RESTORE), encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict) or not float(data.get("at", 0)) >= since:
            return []
        failed = tuple((str(f["name"]), str(f["reason"])) for f in data.get("failed", []))
        result = RestoreResult(
            tuple(map(str, data.get("restored", []))),
            tuple(map(str, data.get("already_running", []))),
            failed,
        )
    except (OSError, ValueError, TypeError, KeyError):
        return []
    return result.lines()
