"""Memory between health runs, so a notifier reports each event once, not on every run.

Events (what changed since the consumer's previous run):
- `gone`: a server that was live (or hung) is now dead, or its socket file is gone (swept).
- `hung`: a server became hung (reported again only after it answered in between).
- `recovered`: a hung server answers again, or an orphaned server's socket is back.
- `orphaned`: a server is alive but its socket file is gone (see `forge-tmux recover`).

The memory is a small JSON file per consumer in the state directory, read and rewritten under an
flock (a timer-driven sweep and a boot hook may run at once) and replaced atomically (temp file in
the same directory, fsync, rename), so a crash leaves the old memory or the new, never half.
`forge-tmux health` itself never writes it: a Prometheus scrape must not consume the events that
the notifier is waiting for.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from typing import Any, NamedTuple

from forge_tmux import atomic
from forge_tmux.health import DirCheck, Health, HealthResult
from forge_tmux.paths import display, state_dir

VERSION = 1


class EventKind(StrEnum):
    GONE = "gone"
    HUNG = "hung"
    RECOVERED = "recovered"
    ORPHANED = "orphaned"


class Event(NamedTuple):
    kind: EventKind
    path: str
    pid: int | None
    detail: str

    def describe(self) -> str:
        """One line for a message, e.g. `tmux server gone: /tmp/tmux-1000/build (pid 42; ...)`."""
        who = f"pid {self.pid}; " if self.pid is not None else ""
        return f"tmux server {self.kind.value}: {display(self.path)} ({who}{self.detail})"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "path": display(self.path),
            "pid": self.pid,
            "detail": self.detail,
        }


# The memory: {"version": 1, "servers": {path: {"state": "live"|"hung", "pid": int|None}},
#              "orphans": {"PID PATH": {"pid": int, "path": str}}}
Memory = dict[str, Any]


def empty() -> Memory:
    return {"version": VERSION, "servers": {}, "orphans": {}}


def diff(previous: Memory, result: HealthResult) -> tuple[list[Event], Memory]:
    """The events between `previous` and `result`, and the memory to keep (pure)."""
    looked = {d.path for d in result.dirs if d.status is not DirCheck.UNREADABLE}
    now = {s.path: s for s in result.sockets}
    orphan_paths = {o.path for o in result.orphans}
    events: list[Event] = []
    servers: dict[str, dict[str, Any]] = {}

    for path, before in sorted(previous.get("servers", {}).items()):
        current = now.get(path)
        if os.path.dirname(path) not in looked or (
            current is not None and current.state is Health.UNKNOWN
        ):
            servers[path] = before  # not looked at, or could not tell: remember as it was
            continue
        if current is None or current.state is Health.DEAD:
            if path not in orphan_paths:  # an orphan is alive: reported as orphaned instead
                what = "socket removed" if current is None else "nobody listening any more"
                events.append(Event(EventKind.GONE, path, before.get("pid"), what))
            continue
        if current.state is Health.HUNG and before.get("state") != Health.HUNG.value:
            events.append(Event(EventKind.HUNG, path, current.pid, current.reason))
        elif current.state is Health.LIVE and before.get("state") == Health.HUNG.value:
            events.append(Event(EventKind.RECOVERED, path, current.pid, "answers again"))

    for socket in result.sockets:
        if socket.state in (Health.LIVE, Health.HUNG):
            if socket.state is Health.HUNG and socket.path not in previous.get("servers", {}):
                events.append(Event(EventKind.HUNG, socket.path, socket.pid, socket.reason))
            servers[socket.path] = {"state": socket.state.value, "pid": socket.pid}

    orphans: dict[str, dict[str, Any]] = {}
    for orphan in result.orphans:
        key = f"{orphan.pid} {orphan.path}"
        orphans[key] = {"pid": orphan.pid, "path": orphan.path}
        if key not in previous.get("orphans", {}):
            events.append(Event(EventKind.ORPHANED, orphan.path, orphan.pid, orphan.reason))
    for key, before in sorted(previous.get("orphans", {}).items()):
        current = now.get(before["path"])
        if key in orphans or current is None:
            continue
        if current.state is Health.LIVE and current.pid == before["pid"]:
            back = Event(EventKind.RECOVERED, before["path"], before["pid"], "socket is back")
            events.append(back)

    return events, {"version": VERSION, "servers": servers, "orphans": orphans}


def memory_path(consumer: str = "notify", directory: str | None = None) -> str:
    return os.path.join(directory or state_dir(), f"health-{consumer}.json")


def load(path: str) -> Memory:
    """The memory at `path`; a missing, unreadable or foreign file is an empty memory (the worst
    outcome is one repeated event, never a crash of the notifier)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return empty()
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return empty()
    if not isinstance(data.get("servers"), dict) or not isinstance(data.get("orphans"), dict):
        return empty()
    return data


def update(
    result: HealthResult, *, consumer: str = "notify", directory: str | None = None
) -> list[Event]:
    """Record `result` in the consumer's memory and return the events new since its last run.

    Raises OSError when the state directory cannot be created or written; the caller (a
    notifier) should log it and carry on: health memory never decides an exit code.
    """
    path = memory_path(consumer, directory)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with atomic.locked(path):
        events, memory = diff(load(path), result)
        atomic.write_atomic(path, json.dumps(memory, sort_keys=True) + "\n")
    return events
