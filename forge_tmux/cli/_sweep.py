"""`forge-tmux sweep`: its Typer declaration; what it does is `_sweep_run.run`."""

from __future__ import annotations

from typing import Annotated

import typer

from forge_tmux.cli.common import DirOpt, JsonOpt, app, finish, state


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
    from forge_tmux.cli._sweep_run import run  # noqa: PLC0415 - keep --help fast

    finish(run(state(ctx), dirs, dry_run, json_out, timeout, notify))
