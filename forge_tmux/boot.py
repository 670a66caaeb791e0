"""The boot hook (`forge-tmux boot`).

At boot: sweep, look whether the post-boot sessions (`[[boot.sessions]]`, started by
`forge-post-boot-sessions.service` just before) are running, take the socket-health row, and
send the summary. Only the sweep decides the exit code: a boot hook that fails because Telegram
is down or a session did not come up would hide the one thing it is for.

The summary's texts and the health events it shares with `sweep --notify` (each told once)
come from forge_tmux.notices.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from forge_tmux import janitorstate
from forge_tmux import sweep as janitor
from forge_tmux.config import Config
from forge_tmux.errors import UsageError
from forge_tmux.logs import log_events
from forge_tmux.notices import health_events, sweep_details, sweep_line
from forge_tmux.notify import headline

log = logging.getLogger(__name__)

# has-session never starts a server; a server that cannot answer this fast is hung anyway.
SESSION_QUERY_TIMEOUT = 5.0


@dataclass
class SessionStatus:
    name: str
    session: str
    socket_name: str
    running: bool
    detail: str = ""

    def line(self) -> str:
        state = "running" if self.running else f"NOT running ({self.detail})"
        return f"{self.session} on {self.socket_name}: {state}"


def post_boot_status(cfg: Config) -> list[SessionStatus]:
    """Whether each `[[boot.sessions]]` entry is running now (read-only: has-session)."""
    from forge_tmux import postboot, spawn, tmux  # noqa: PLC0415 - only with boot sessions

    try:
        planned = postboot.requests(cfg)
    except UsageError as exc:
        return [SessionStatus("boot.sessions", "boot.sessions", "-", False, str(exc))]
    statuses = []
    for request in planned:
        try:
            found = tmux.run(
                ("has-session", "-t", spawn.exact(request.session)),
                socket_name=request.socket_name,
                timeout=SESSION_QUERY_TIMEOUT,
            )
        except tmux.TmuxNotFound as exc:
            detail, running = str(exc), False
        else:
            running = found.ok
            detail = "timed out" if found.timed_out else found.stderr.strip() or "not found"
        statuses.append(
            SessionStatus(request.name, request.session, request.socket_name, running, detail)
        )
    return statuses


@dataclass
class BootReport:
    sweep: janitor.SweepResult
    sessions: list[SessionStatus] = field(default_factory=list)
    row: str = ""
    events: list[str] = field(default_factory=list)
    restore: list[str] = field(default_factory=list)  # post-boot --restore's lines, this boot

    @property
    def ok(self) -> bool:
        return self.sweep.ok

    def lines(self) -> list[str]:
        lines = [sweep_line(self.sweep), *sweep_details(self.sweep)]
        if self.sessions:
            up = sum(1 for s in self.sessions if s.running)
            lines.append(f"post-boot sessions: {up} of {len(self.sessions)} running")
            lines += [f"  {s.line()}" for s in self.sessions]
        lines += self.restore
        lines.append(self.row)
        lines += self.events
        return lines

    def message(self) -> str:
        """The boot summary for Telegram (HTML, every part escaped)."""
        return headline("booted", self.lines())

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "sweep": self.sweep.to_json(),
            "post_boot": [
                {
                    "name": s.name,
                    "session": s.session,
                    "socket_name": s.socket_name,
                    "running": s.running,
                    "detail": "" if s.running else s.detail,
                }
                for s in self.sessions
            ],
            "health": self.row,
            "events": self.events,
        }


def boot(cfg: Config, dirs: Sequence[str], *, notifying: bool = True) -> BootReport:
    """Sweep, then look; only the sweep can fail the boot hook. `notifying`: the summary goes
    to Telegram, so health events are taken from (and recorded in) the shared memory."""
    swept = janitor.sweep(dirs, timeout=cfg.sweep.timeout, protected=cfg.protected_sockets)
    janitorstate.record_sweep(swept.ok, swept.removed)
    summary = BootReport(swept)
    log_events(log, janitor.log_events(summary.sweep))
    # What follows only looks; a bug in it must not turn a good boot sweep into a failure.
    try:
        if cfg.boot.sessions:
            summary.sessions = post_boot_status(cfg)
    except Exception:
        log.exception("boot: could not check the post-boot sessions")
    try:
        from forge_tmux import snapshot  # noqa: PLC0415

        summary.restore = snapshot.last_restore(since=_booted_at())
    except Exception:
        log.exception("boot: could not read what the restore did")
    try:
        summary.row, summary.events = health_events(cfg, dirs, remember=notifying)
    except Exception:
        log.exception("boot: could not check socket health")
        summary.row = "tmux sockets: health check failed (see the journal)"
    return summary


def _booted_at() -> float:
    """When this machine booted (epoch), from /proc/uptime; 0 when unknown."""
    import time  # noqa: PLC0415

    try:
        with open("/proc/uptime", encoding="ascii") as fh:
            return time.time() - float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
