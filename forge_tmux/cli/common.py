"""What every command's Typer declaration shares: the app, common options, the state of the
invocation and its end. What needs no Typer is in forge_tmux.cli.base."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from forge_tmux.cli.base import State

app = typer.Typer(
    name="forge-tmux",
    help="Keeps tmux-based agent fleets spawnable: stale-socket janitor, isolated spawns, "
    "systemd units and Telegram notifications.",
    no_args_is_help=True,
    # --install-completion/--show-completion; completion itself runs only when the shell sets
    # _FORGE_TMUX_COMPLETE, and costs the sweep's cold start nothing measurable
    # (scripts/bench_completion.py).
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Options several commands take, declared once so their help text cannot drift apart.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]
DirOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--dir",
        metavar="DIR",
        help="Socket directory to scan (repeatable); replaces the defaults "
        "(${TMUX_TMPDIR:-/tmp}/tmux-UID plus socket_dirs from the config).",
    ),
]


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, State):
        obj = State(None)
        root.obj = obj
    return obj


def start_logging(ctx: typer.Context) -> None:
    """See State.start_logging."""
    state(ctx).start_logging()


def finish(code: int) -> NoReturn:
    raise typer.Exit(code)
