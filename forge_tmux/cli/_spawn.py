"""`forge-tmux spawn, post-boot` (registered on the shared app when imported)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from forge_tmux.cli.base import emit_json, positive
from forge_tmux.cli.common import JsonOpt, app, finish, start_logging, state


@app.command()
def spawn(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="Session name. Letters, digits, - and _ are kept; anything else becomes - "
            "and a short hash of NAME is appended.",
        ),
    ],
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[-- COMMAND [ARG...]]",
            help="Run as an argument vector, never through a shell (default: your shell).",
        ),
    ] = None,
    socket_name: Annotated[
        str | None,
        typer.Option("--socket-name", metavar="LABEL", help="Socket label (default spawn-NAME)."),
    ] = None,
    wait_for: Annotated[
        str | None,
        typer.Option("--wait-for", metavar="REGEX", help="Wait until the pane shows a match."),
    ] = None,
    ready_timeout: Annotated[
        float | None,
        typer.Option(
            "--ready-timeout",
            metavar="SECONDS",
            help="How long to wait for --wait-for (default spawn.ready_timeout, 30).",
        ),
    ] = None,
    notify: Annotated[
        bool,
        typer.Option(
            "--notify/--no-notify",
            help="Send the result to the Telegram chat (never changes the exit code).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Start a detached tmux session NAME on its own socket (-L spawn-NAME), verified.

    Exit 0 when the session runs (and showed --wait-for), 1 when it could not be started, is
    already running, or never became ready (it is then left running), 2 on bad input.
    """
    from forge_tmux import spawn as core  # noqa: PLC0415 - keep --help fast

    start_logging(ctx)
    cfg = state(ctx).config
    request = core.request_for(
        cfg,
        name,
        command or (),
        socket_name=socket_name,
        wait_for=wait_for,
        ready_timeout=None if ready_timeout is None else positive(ready_timeout, "--ready-timeout"),
    )
    telegram = None
    if notify:
        from forge_tmux import notify as tg  # noqa: PLC0415

        telegram = tg.resolve(cfg.telegram)  # an unsafe token file is exit 2 before spawning
    result = core.spawn_for(cfg, request)
    if json_out:
        emit_json(result.to_json())
    elif result.ok:
        print(result.message)
    elif result.outcome is core.Outcome.ALREADY_RUNNING:
        sys.stderr.write(f"forge-tmux: {result.error}\n")
    else:
        sys.stderr.write(f"forge-tmux: {result.message}: {result.error}\n")
    if telegram is not None:
        from forge_tmux.notices import spawn_text  # noqa: PLC0415

        tg.report(telegram, tg.headline(spawn_text(result)), asked=True)
    finish(0 if result.ok else 1)


@app.command("post-boot")
def post_boot(
    ctx: typer.Context,
    restore: Annotated[
        bool,
        typer.Option(
            "--restore",
            help="Also re-spawn the sessions of the saved snapshot (forge-tmux save); "
            "default: [boot] restore in the config.",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Start every [[boot.sessions]] entry of the config, each on its own socket.

    A session already running is reported, not an error. Exit 0 when all run, 1 when any could
    not be started, 2 on a bad entry (checked before any is started).
    """
    from forge_tmux import postboot as core  # noqa: PLC0415

    start_logging(ctx)
    cfg = state(ctx).config
    result = core.post_boot(cfg)
    restored = core.restore(cfg) if restore or cfg.boot.restore else None
    if json_out:
        data = result.to_json()
        if restored is not None:
            data = {**data, **restored.to_json(), "ok": result.ok and restored.ok}
        emit_json(data)
    else:
        for session in result.sessions:
            line = session.message if session.error is None else session.error
            print(f"{session.outcome.value:16} {line}")
        print(result.summary())
        if restored is not None:
            print("\n".join(restored.lines()))
    finish(0 if result.ok and (restored is None or restored.ok) else 1)
