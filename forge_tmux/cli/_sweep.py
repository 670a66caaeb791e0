"""`forge-tmux sweep`."""

from __future__ import annotations

from typing import Annotated

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
    telegram = None
    if notify and not dry_run:
        import logging  # noqa: PLC0415 - only when notifying

        from forge_tmux import notify as tg  # noqa: PLC0415
        from forge_tmux.errors import UsageError  # noqa: PLC0415

        start_logging(ctx)
        try:
            telegram = tg.resolve(cfg.telegram)
        except UsageError as exc:
            # The timer runs `sweep --notify`: a Telegram mistake (a group-readable token file)
            # must not switch the janitor off. Say so loudly, sweep, and keep the sweep's code.
            # One line, no traceback: the message says what to fix.
            logging.getLogger("forge_tmux.sweep").error("not notifying: %s", exc)  # noqa: TRY400
    result = core.sweep(
        socket_dirs(cfg, dirs),
        dry_run=dry_run,
        timeout=positive(timeout, "--timeout") if timeout is not None else cfg.sweep.timeout,
        protected=cfg.protected_sockets,
    )
    events = core.log_events(result)
    if not dry_run:
        from forge_tmux.janitorstate import update_after_sweep  # noqa: PLC0415

        problem = update_after_sweep(result.ok, result.removed)
        if problem:
            events.insert(0, (core.WARNING, problem))  # logged with the sweep's own events
    if events:
        import itertools  # noqa: PLC0415 - only when there is something to log
        import logging  # noqa: PLC0415

        start_logging(ctx)
        log = logging.getLogger("forge_tmux.sweep")
        # One record per run of same-level events, one line per event (see logs._Formatter):
        # a thousand removals would otherwise cost a third of the sweep in logging machinery.
        for level, group in itertools.groupby(events, key=lambda event: event[0]):
            log.log(level, "%s", "\n".join(text for _, text in group))
    if json_out:
        emit_json(result.to_json())
    else:
        print(core.render_human(result, dry_run=dry_run))
    if telegram is not None:
        from forge_tmux.notices import notify_after_sweep  # noqa: PLC0415

        notify_after_sweep(cfg, socket_dirs(cfg, dirs), result, telegram)
    finish(0 if result.ok else 1)
