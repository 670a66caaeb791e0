"""`forge-tmux sweep`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from forge_tmux.cli.common import (
    DirOpt,
    JsonOpt,
    app,
    emit_json,
    finish,
    positive,
    socket_dirs,
    start_logging,
    state,
)

if TYPE_CHECKING:
    from forge_tmux.config import Config
    from forge_tmux.notify import TelegramSettings
    from forge_tmux.sweep import SweepResult


@app.command()
def sweep(
    ctx: typer.Context,
    dirs: DirOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be removed; remove nothing.")
    ] = False,
    json_out: JsonOpt = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Bound in seconds on the run's probes and on each wait for a tmux client to "
            "reach a removed lock file (default 2, or sweep.timeout).",
        ),
    ] = None,
    notify: Annotated[
        bool,
        typer.Option(
            "--notify",
            help="Tell Telegram when something was removed or a server is gone or hung (each "
            "event once; sweep.notify policy), and deliver the outbox. Not with --dry-run.",
        ),
    ] = False,
) -> None:
    """Remove stale tmux sockets (no server listening); never anything else.

    Exit 0 when the sweep did its job, 1 when a directory was refused or a stale socket could not
    be removed, 2 on bad input.
    """
    from forge_tmux import sweep as core  # noqa: PLC0415 - keep --help fast

    cfg = state(ctx).config
    telegram = _telegram(ctx, cfg) if notify and not dry_run else None
    chosen = socket_dirs(cfg, dirs)
    limit = positive(timeout, "--timeout") if timeout is not None else cfg.sweep.timeout
    result = core.sweep(chosen, dry_run=dry_run, timeout=limit, protected=cfg.protected_sockets)
    _log(ctx, result, record=not dry_run)
    if json_out:
        emit_json(result.to_json())
    else:
        print(core.render_human(result, dry_run=dry_run))
    if telegram is not None:
        from forge_tmux.notices import notify_after_sweep  # noqa: PLC0415

        notify_after_sweep(cfg, chosen, result, telegram)
    finish(0 if result.ok else 1)


def _telegram(ctx: typer.Context, cfg: Config) -> TelegramSettings | None:
    """The Telegram settings for --notify, or None when they are unusable."""
    import logging  # noqa: PLC0415 - only when notifying

    from forge_tmux import notify as tg  # noqa: PLC0415
    from forge_tmux.errors import UsageError  # noqa: PLC0415

    start_logging(ctx)
    try:
        return tg.resolve(cfg.telegram)
    except UsageError as exc:
        # The timer runs `sweep --notify`: a Telegram mistake (a group-readable token file)
        # must not switch the janitor off. Say so loudly, sweep, and keep the sweep's code.
        # One line, no traceback: the message says what to fix.
        logging.getLogger("forge_tmux.sweep").error("not notifying: %s", exc)  # noqa: TRY400
        return None


def _log(ctx: typer.Context, result: SweepResult, *, record: bool) -> None:
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

    start_logging(ctx)
    log = logging.getLogger("forge_tmux.sweep")
    # One record per run of same-level events, one line per event (see logs._Formatter):
    # a thousand removals would otherwise cost a third of the sweep in logging machinery.
    for level, group in itertools.groupby(events, key=lambda event: event[0]):
        log.log(level, "%s", "\n".join(text for _, text in group))
