"""`forge-tmux notify, bot` (registered on the shared app when imported)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from forge_tmux.cli.base import emit_json, socket_dirs
from forge_tmux.cli.common import (
    JsonOpt,
    app,
    finish,
    start_logging,
    state,
)


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
    message = core.escape(text) if (text := _readable(text)) else None
    result = core.deliver(settings, message)
    if json_out:
        emit_json(result.to_json())
    else:
        print(core.render_delivery(result))
    finish(0 if result.ok else 1)


def _readable(text: str | None) -> str | None:
    """The message as text. Bytes that are not UTF-8 (in the argument, which Python keeps as
    lone surrogates, or on stdin) become U+FFFD: the operator sees where they were, and the
    message still goes out."""
    if text == "-":
        return sys.stdin.buffer.read().decode("utf-8", "replace")
    if text is None:
        return None
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@app.command()
def bot(ctx: typer.Context) -> None:
    """Run the Telegram bot (long polling): /spawn NAME [PROFILE], /health, /sweep, /help for
    the users in bot.allowed_user_ids / FORGE_TMUX_BOT_ALLOWED_USERS only. Stops on SIGTERM.
    """
    from forge_tmux import bot as core  # noqa: PLC0415
    from forge_tmux import notify  # noqa: PLC0415
    from forge_tmux.errors import UsageError  # noqa: PLC0415

    start_logging(ctx)
    cfg = state(ctx).config
    settings = notify.resolve(cfg.telegram)
    if not settings.token:
        raise UsageError(f"the bot needs {settings.missing().split(' and ')[0]}")
    users = core.allowed_users(cfg.bot)
    actions = core.FleetActions(cfg, socket_dirs(cfg, None))
    finish(core.run(cfg, settings, actions, users))
