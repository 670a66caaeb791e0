"""What every command shares: the Typer app, the config, socket directories, output."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, NoReturn

import typer

from forge_tmux.config import Config, check_seconds, load
from forge_tmux.errors import UsageError
from forge_tmux.paths import tmux_socket_dir

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


class State:
    """Per-invocation state from the global options; the config is read on first use."""

    def __init__(self, config_path: str | None, verbose: bool = False) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load(self.config_path)
        return self._config


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, State):
        obj = State(None)
        root.obj = obj
    return obj


def start_logging(ctx: typer.Context) -> None:
    """Configure logging (stderr, journal priorities, token redaction). Every command calls it
    before doing work, except that the sweep defers it until it has something to log: importing
    `logging` is a measurable part of the sweep's cold start."""
    from forge_tmux import logs  # noqa: PLC0415

    logs.setup(state(ctx).verbose)


def socket_dirs(cfg: Config, given: list[str] | None) -> list[str]:
    """`--dir` replaces the defaults; the defaults are tmux's own directory plus the config's."""
    if given:
        if any(not d for d in given):
            raise UsageError("--dir must not be empty")
        return list(given)
    return [tmux_socket_dir(), *cfg.socket_dirs]


def positive(value: float, option: str) -> float:
    """A duration option, under the same rule as the config's duration keys."""
    problem = check_seconds(value)
    if problem:
        raise UsageError(f"{option} {problem}, not {value:g}")
    return value


def json_text(data: dict[str, Any]) -> str:
    """The one JSON rendering of a command's result (stdout, or a file with --output)."""
    import json  # noqa: PLC0415 - not on the path of a plain sweep

    return json.dumps(data, ensure_ascii=False)


def emit_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()


def finish(code: int) -> NoReturn:
    raise typer.Exit(code)


def is_root() -> bool:
    return os.geteuid() == 0
