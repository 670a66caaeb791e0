"""What Telegram is told about sweeps and spawns, and when (`sweep --notify`'s policy).

The texts are shared by the boot hook's summary, the bot's replies and `spawn --notify`; the
policy decides whether a periodic sweep is worth a message at all.

Health events (a server gone, hung, orphaned since the previous run) are remembered in the state
directory under one consumer name shared by the boot hook and `sweep --notify`, so each event is
told once, whichever of them sees it first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from forge_tmux import health, healthstate
from forge_tmux import sweep as janitor
from forge_tmux.config import Config
from forge_tmux.notify import TelegramSettings, deliver, headline
from forge_tmux.paths import display

if TYPE_CHECKING:
    from forge_tmux.spawn import SpawnResult

log = logging.getLogger(__name__)

# The health memory shared by the boot hook and `sweep --notify` (see the module docstring).
CONSUMER = "notify"


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
