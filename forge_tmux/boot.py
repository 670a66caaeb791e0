"""The boot hook (`forge-tmux boot`) and the texts that Telegram receives about sweeps.

At boot: sweep, look whether the post-boot sessions (`[[boot.sessions]]`, started by
`forge-post-boot-sessions.service` just before) are running, take the socket-health row, and
send the summary. Only the sweep decides the exit code: a boot hook that fails because Telegram
is down or a session did not come up would hide the one thing it is for.

Health events (a server gone, hung, orphaned since the previous run) are remembered in the state
directory under one consumer name shared by the boot hook and `sweep --notify`, so each event is
told once, whichever of them sees it first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from forge_tmux import health, healthstate, janitorstate
from forge_tmux import sweep as janitor
from forge_tmux.config import Config
from forge_tmux.errors import UsageError
from forge_tmux.notify import TelegramSettings, deliver, headline
from forge_tmux.paths import display

if TYPE_CHECKING:
    from forge_tmux.spawn import SpawnResult

log = logging.getLogger(__name__)

CONSUMER = "notify"
# has-session never starts a server; a server that cannot answer this fast is hung anyway.
SESSION_QUERY_TIMEOUT = 5.0


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def sweep_line(result: janitor.SweepResult) -> str:
    """One line about a sweep, e.g. `sweep: removed 1 stale socket (2 live)`."""
    counts = result.summary()
    removed = counts["removed"]
    head = f"removed {plural(removed, 'stale socket')}" if removed else "nothing stale"
    extra = [f"{counts['live']} live"]
    if counts["unknown"]:
        extra.append(f"{counts['unknown']} unknown")
    refused = [d for d in result.dirs if d.status is janitor.DirStatus.REFUSED]
    if refused:
        extra.append(f"{plural(len(refused), 'directory')} refused")
    return f"sweep: {head} ({', '.join(extra)})"


def sweep_details(result: janitor.SweepResult) -> list[str]:
    """What a person wants to see after the summary line: removals and refusals."""
    lines = [f"removed {display(s.path)}" for s in result.sockets if s.removed]
    lines += [
        f"refused {display(d.path)}: {d.reason}"
        for d in result.dirs
        if d.status is janitor.DirStatus.REFUSED
    ]
    lines += [f"could not remove {display(s.path)}: {s.reason}" for s in result.sockets if s.failed]
    return lines


def spawn_text(result: SpawnResult) -> str:
    """The harness's own message, with the reason when it failed (bot reply, spawn --notify)."""
    text = result.message
    if result.error and result.error != result.message:
        text += f": {result.error}"
    return text


def health_events(
    cfg: Config, dirs: Sequence[str], *, remember: bool = True
) -> tuple[str, list[str]]:
    """The health row and the events new since the last notifying run (told once each).
    Without `remember` the state directory is neither read nor written: with no one to tell,
    there is nothing to remember."""
    result = health.collect(dirs, timeout=cfg.health.timeout, parallel=cfg.health.parallel)
    if not remember:
        return health.render_row(result), []
    try:
        events = healthstate.update(result, consumer=CONSUMER)
    except OSError as exc:
        log.warning("cannot remember health events in the state directory: %s", exc)
        events = []
    return health.render_row(result), [e.describe() for e in events]


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
    for level, text in janitor.log_events(summary.sweep):
        log.log(level, "%s", text)
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


def sweep_notice(cfg: Config, dirs: Sequence[str], result: janitor.SweepResult) -> str | None:
    """What the periodic sweep tells Telegram, or None (policy `sweep.notify`). Under `changes`
    only a removal or a new health event (gone, hung, orphaned, recovered; each told once)
    makes a message, so a quiet fleet never gets one every cycle. A refused directory alone
    does not either: it would repeat every run; the journal has it at warning."""
    policy = cfg.sweep.notify
    if policy == "never":
        return None
    row, events = health_events(cfg, dirs)
    if policy == "changes" and not result.removed and not events:
        return None
    return headline("sweep", [sweep_line(result), *sweep_details(result), *events, row])


def notify_after_sweep(
    cfg: Config, dirs: Sequence[str], result: janitor.SweepResult, settings: TelegramSettings
) -> None:
    """`sweep --notify`: send the notice if there is one, and deliver what the outbox holds
    (a boot summary kept while the network was down goes out with the next sweep). Without
    Telegram configured it does nothing at all (no health check, no memory), so a unit may pass
    `--notify` unconditionally. Never raises: the sweep's exit code is the sweep's."""
    if not settings.ready:
        log.info("Telegram not configured (missing %s); not notifying", settings.missing())
        return
    try:
        text = sweep_notice(cfg, dirs, result)
    except Exception:  # a health check that breaks must not break the sweep
        log.exception("sweep --notify: could not check health")
        text = None
    deliver(settings, text)
