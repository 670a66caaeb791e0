"""`forge-tmux boot` (registered on the shared app when imported)."""

from __future__ import annotations

import typer

from forge_tmux.cli.base import emit_json, socket_dirs
from forge_tmux.cli.common import (
    DirOpt,
    JsonOpt,
    app,
    finish,
    start_logging,
    state,
)


@app.command()
def boot(ctx: typer.Context, dirs: DirOpt = None, json_out: JsonOpt = False) -> None:
    """The boot hook: sweep, the post-boot sessions' status, the health row, and the summary
    to Telegram. Exit 0 unless the sweep itself failed (Telegram never changes the exit code).
    """
    from forge_tmux import boot as core  # noqa: PLC0415
    from forge_tmux import notify  # noqa: PLC0415

    start_logging(ctx)
    cfg = state(ctx).config
    settings = notify.for_job(cfg.telegram)
    notifying = settings is not None and settings.ready
    report = core.boot(cfg, socket_dirs(cfg, dirs), notifying=notifying)
    delivery = notify.report(settings, report.message())
    if json_out:
        emit_json({**report.to_json(), "notify": delivery.to_json() if delivery else None})
    else:
        print("\n".join(report.lines()))
        if delivery is not None:
            print(notify.render_delivery(delivery))
    finish(0 if report.ok else 1)
