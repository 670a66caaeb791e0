"""The commands the timers and monitoring run, parsed without Typer.

Typer builds its parser from the declarations at every start. Importing it costs more (about
55 ms on a 2-core host) than the sweep's whole work on 1,000 stale sockets, and the sweep timer
pays it every 10 minutes on every host, the health timer and plugin runners every minute or so.
So a command line of a command in OPTIONS is parsed here, from a table that
tests/integration/test_cli_fast.py derives from the Typer declarations themselves: the options
are declared once, in Typer, and the table cannot drift from them.

Only a command line the table fully understands is taken. Anything else goes to Typer, which
parses and reports exactly as it always does: `--help`, shell completion, an unknown or misspelt
option, bundled short flags (`-vv`), `--`, a flag given a value, a value missing or looking like
an option, a number that does not parse, a choice not offered. Both paths then call the same
function (`_sweep_run.run`, `_health_run.run`), so what a command does cannot differ between them
either.
"""

from __future__ import annotations

import importlib
import os
from typing import Final, NamedTuple

FLAG: Final = "flag"  # --json: True when given
TEXT: Final = "text"  # --config PATH: the last one given
FLOAT: Final = "float"  # --timeout SECONDS: as click converts it, float()
MANY: Final = "many"  # --dir DIR, repeatable: every one, in order
CHOICE: Final = "choice"  # --format FORMAT: one of `choices`, exactly


class Opt(NamedTuple):
    param: str  # the keyword of the command's function
    kind: str
    choices: tuple[str, ...] = ()


# Global options taken here; the others (--version, completion) go to Typer.
GLOBAL: Final[dict[str, Opt]] = {
    "--config": Opt("config", TEXT),
    "--verbose": Opt("verbose", FLAG),
    "-v": Opt("verbose", FLAG),
}
# command -> its options; each command's module has `run(state, **params) -> exit code`.
OPTIONS: Final[dict[str, dict[str, Opt]]] = {
    "sweep": {
        "--dir": Opt("dirs", MANY),
        "--dry-run": Opt("dry_run", FLAG),
        "--json": Opt("json_out", FLAG),
        "--timeout": Opt("timeout", FLOAT),
        "--notify": Opt("notify", FLAG),
    },
    "health": {
        "--dir": Opt("dirs", MANY),
        "--all-users": Opt("all_users", FLAG),
        "--format": Opt("fmt", CHOICE, ("row", "json", "prometheus", "nagios")),
        "--json": Opt("json_out", FLAG),
        "--output": Opt("output", TEXT),
        "--check": Opt("check", FLAG),
        "--timeout": Opt("timeout", FLOAT),
        "--warning": Opt("warning", MANY),
        "-w": Opt("warning", MANY),
        "--critical": Opt("critical", MANY),
        "-c": Opt("critical", MANY),
        "--events": Opt("events", FLAG),
    },
}
RUNNERS: Final[dict[str, str]] = {
    "sweep": "forge_tmux.cli._sweep_run",
    "health": "forge_tmux.cli._health_run",
}


class Parsed(NamedTuple):
    command: str
    config: str | None
    verbose: bool
    params: dict[str, object]


def parse(args: list[str]) -> Parsed | None:
    """The command line as the table reads it, or None: not one for this path (see above)."""
    if "_FORGE_TMUX_COMPLETE" in os.environ:  # shell completion: Typer's
        return None
    given: dict[str, object] = {}
    index = _options(GLOBAL, args, 0, given, stop_at_word=True)
    if index is None or index >= len(args) or args[index] not in OPTIONS:
        return None
    command = args[index]
    params: dict[str, object] = {}
    if _options(OPTIONS[command], args, index + 1, params, stop_at_word=False) is None:
        return None
    config = given.get("config")
    return Parsed(command, config if isinstance(config, str) else None, "verbose" in given, params)


def _options(
    table: dict[str, Opt],
    args: list[str],
    index: int,
    into: dict[str, object],
    *,
    stop_at_word: bool,
) -> int | None:
    """Read options of `table` from args[index:] into `into`; the index of the first word (with
    `stop_at_word`), else of the end; None at anything the table does not know."""
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-") or arg == "-":
            return index if stop_at_word else None
        name, has_value, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        opt = table.get(name)
        if opt is None:
            return None
        if opt.kind == FLAG:
            if has_value:
                return None
            into[opt.param] = True
            index += 1
            continue
        if has_value:
            value, index = inline, index + 1
        elif index + 1 < len(args) and not args[index + 1].startswith("-"):
            value, index = args[index + 1], index + 2
        else:
            return None  # missing, or what click might read as an option: Typer decides
        if opt.kind == FLOAT:
            try:
                into[opt.param] = float(value)
            except ValueError:
                return None
        elif opt.kind == MANY:
            values = into.setdefault(opt.param, [])
            assert isinstance(values, list)  # noqa: S101 - only MANY stores a list
            values.append(value)
        elif opt.kind == CHOICE and value not in opt.choices:
            return None
        else:
            into[opt.param] = value
    return None if stop_at_word else index


def run(args: list[str]) -> int | None:
    """Run the command line if it is one for this path: its exit code, else None."""
    parsed = parse(args)
    if parsed is None:
        return None
    from forge_tmux.cli.base import State  # noqa: PLC0415

    module = importlib.import_module(RUNNERS[parsed.command])
    code: int = module.run(State(parsed.config, parsed.verbose), **parsed.params)
    return code
