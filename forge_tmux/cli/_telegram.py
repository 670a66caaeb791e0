"""`forge-tmux notify, boot, bot` (registered on the shared app when imported)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from forge_tmux.cli.common import JsonOpt, app, emit_json, finish, start_logging, state


@app.command()
def notify(
    ctx: typer.Context,
    text: Annotated[
        str | None,
        typer.Argument(
            help="Message (plain text, sent escaped); '-' reads stdin; none: only deliver "
            "what the outbox holds."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Send a message to the Telegram chat, delivering the outbox first (oldest first).

    Exit 0 when everything was delivered, 1 when something is kept in the outbox for the next
    run, 2 when Telegram is not configured or the token file is unsafe.
    """
    from forge_tmux import notify as core  # noqa: PLC0415

    start_logging(ctx)
    settings = core.resolve(state(ctx).config.telegram)
    if not settings.ready:
        from forge_tmux.errors import UsageError  # noqa: PLC0415

        raise UsageError(f"Telegram is not configured: missing {settings.missing()}")
    if text == "-":
        text = sys.stdin.read()
    message = core.escape(text) if text else None
    result = core.deliver(settings, message)
    if json_out:
        emit_json(result.to_json())
    else:
        print(core.render_delivery(result))
    finish(0 if result.ok else 1)
