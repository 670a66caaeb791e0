"""The command line: a thin layer that parses options, calls the core and renders its result.

Errors in the user's input become one line on stderr and exit 2, never a traceback.

Commands live in one module each (`_sweep.py`, ...), registered on the shared app when imported.
Only the module of the command being run is imported: Typer converts every registered command
at start-up, and the sweep's cold start must stay within 1.3x of `import typer` however many
commands the program grows (the lazy-subcommand pattern click documents as LazyGroup).
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Final

import typer

# Typer vendors click; its exception types are the only way to tell a usage error apart.
from typer._click import exceptions as click_exc

from forge_tmux import __version__
from forge_tmux.cli.common import State, app
from forge_tmux.errors import UsageError

# command name -> module that registers it
COMMANDS: Final[dict[str, str]] = {
    "sweep": "forge_tmux.cli._sweep",
    "spawn": "forge_tmux.cli._spawn",
    "post-boot": "forge_tmux.cli._spawn",
    "audit": "forge_tmux.cli._spawn",
    "units": "forge_tmux.cli._units",
    "doctor": "forge_tmux.cli._units",
    "health": "forge_tmux.cli._health",
    "recover": "forge_tmux.cli._health",
    "notify": "forge_tmux.cli._telegram",
    "boot": "forge_tmux.cli._telegram",
    "bot": "forge_tmux.cli._telegram",
    "ls": "forge_tmux.cli._sessions",
    "attach": "forge_tmux.cli._sessions",
    "peek": "forge_tmux.cli._sessions",
    "kill": "forge_tmux.cli._sessions",
    "save": "forge_tmux.cli._sessions",
    "session-closed": "forge_tmux.cli._sessions",
}
# Global options that take a value, so the command name is found after them.
_VALUED_GLOBALS: Final = frozenset({"--config"})


def command_name(argv: list[str]) -> str | None:
    """The subcommand named on the command line, or None (help, --version, nothing)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUED_GLOBALS:
            skip = True
        elif arg == "--":
            return None
        elif not arg.startswith("-"):
            return arg
    return None


def register(argv: list[str]) -> None:
    """Import the module of the command being run, or all of them when it is not known."""
    wanted = COMMANDS.get(command_name(argv) or "")
    for module in [wanted] if wanted else sorted(set(COMMANDS.values())):
        importlib.import_module(module)


def _version(value: bool) -> None:
    if value:
        print(f"forge-tmux {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Config file (TOML). Default: $XDG_CONFIG_HOME/forge-tmux/config.toml; "
            "a missing default file means defaults.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = State(config, verbose)


def _error(message: str) -> int:
    # One line, whatever the message contained.
    text = " ".join(message.split())
    sys.stderr.write(f"forge-tmux: error: {text}\n")
    return 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    register(args)
    try:
        result = app(args=args, prog_name="forge-tmux", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as exc:
        # A bare `forge-tmux`: the help is the answer, on stderr, as click does it.
        sys.stderr.write(exc.format_message() + "\n")
        return 2
    except click_exc.UsageError as exc:
        where = ""
        if exc.ctx is not None and exc.ctx.info_name and exc.ctx.parent is not None:
            where = f"{exc.ctx.info_name}: "
        return _error(where + exc.format_message())
    except click_exc.ClickException as exc:
        return _error(exc.format_message())
    except UsageError as exc:
        return _error(str(exc))
    except typer.Abort:
        return 130
    except BrokenPipeError:
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
