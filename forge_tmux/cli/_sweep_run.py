"""What `forge-tmux sweep` does once its options are parsed, by Typer (`_sweep.py`) or by the
fast path (`_fast.py`): no Typer here, and nothing heavy until it is needed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forge_tmux.cli.base import State, emit_json, positive, socket_dirs

if TYPE_CHECKING:
    from forge_tmux.config import Config
    from forge_tmux.notify import TelegramSettings
    from forge_tmux.sweep import SweepResult


def run(
    st: State,
    dirs: list[str] | None = None,
    dry_run: bool = False,
    json_out: bool = False,
    timeout: float | None = None,
    notify: bool = False,
) -> int:
    """The sweep, its report and its notices; the exit code (0, or 1 when it failed)."""
    from forge_tmux import sweep as core  # noqa: PLC0415

    cfg = st.config
    telegram = _telegram(st, cfg) if notify and not dry_run else None
    chosen = socket_dirs(cfg, dirs)
    limit = positive(timeout, "--timeout") if timeout is not None else cfg.sweep.timeout
    result = core.sweep(chosen, dry_run=dry_run, timeout=limit, protected=cfg.protected_sockets)
    _log(st, result, record=not dry_run)
    if json_out:
        emit_json(result.to_json())
    else:
        print(core.render_human(result, dry_run=dry_run))
    if telegram is not None:
        from forge_tmux.notices import notify_after_sweep  # noqa: PLC0415

        notify_after_sweep(cfg, chosen, result, telegram)
    return 0 if result.ok else 1


def _telegram(st: State, cfg: Config) -> TelegramSettings | None:
    """The Telegram settings for --notify, or None when they are unusable."""
    import logging  # noqa: PLC0415 - only when notifying

    from forge_tmux import notify as tg  # noqa: PLC0415
    from forge_tmux.errors import UsageError  # noqa: PLC0415

    st.start_logging()
    try:
        return tg.resolve(cfg.telegram)
    except UsageError as exc:
        # The timer runs `sweep --notify`: a Telegram mistake (a group-readable token file)
        # must not switch the janitor off. Say so loudly, sweep, and keep the sweep's code.
        # One line, no traceback: the message says what to fix.
        logging.getLogger("forge_tmux.sweep").error("not notifying: %s", exc)  # noqa: TRY400
        return None


def _log(st: State, result: SweepResult, *, record: bool) -> None:
    """The sweep's events to the journal; `record`: update the janitor record first (its
    problem, if any, is logged with the sweep's own events)."""
    from forge_tmux import sweep as core  # noqa: PLC0415

    events = core.log_events(result)
    if record:
        from forge_tmux.janitorstate import update_after_sweep  # noqa: PLC0415

        problem = update_after_sweep(result.ok, result.removed)
        if problem:
            events.insert(0, (core.WARNING, problem))
    if not events:
        return
    import itertools  # noqa: PLC0415 - only when there is something to log
    import logging  # noqa: PLC0415

    st.start_logging()
    log = logging.getLogger("forge_tmux.sweep")
    # One record per run of same-level events, one line per event (see logs._Formatter):
    # a thousand removals would otherwise cost a third of the sweep in logging machinery.
    for level, group in itertools.groupby(events, key=lambda event: event[0]):
        log.log(level, "%s", "\n".join(text for _, text in group))
