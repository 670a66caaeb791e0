"""The root of the command line: the global options and the group that loads commands lazily.

`forge_tmux.cli.main` imports the module of the command being run before the group is built.
The group itself lists every command of COMMANDS (in that order) and lists one whose module was
not imported from SUMMARIES, so `forge-tmux --help` imports no command module. Asked for a
command it has not converted (shell completion, a name click finds where main did not), it
imports the module then: a command is never missing, at worst slower.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer
import typer.main
from typer import _click as click  # Typer vendors click: its classes, not a second copy
from typer.core import TyperCommand, TyperGroup

from forge_tmux import __version__
from forge_tmux.cli import COMMANDS, HIDDEN, SUMMARIES
from forge_tmux.cli.base import State
from forge_tmux.cli.common import app


class LazyGroup(TyperGroup):
    """The root group: commands in COMMANDS order, loaded on first use."""

    _listing = False  # inside format_commands: summaries stand in for unloaded commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        listed = [name for name in COMMANDS if name not in HIDDEN]
        return [*listed, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None or cmd_name not in COMMANDS:
            return command
        if self._listing and cmd_name in SUMMARIES:
            # Only shown, never registered or invoked: its real command is loaded on use.
            return TyperCommand(name=cmd_name, help=SUMMARIES[cmd_name])
        importlib.import_module(COMMANDS[cmd_name])
        command = typer.main.get_group(app).commands.get(cmd_name)
        if command is not None:
            self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False


def command_group() -> click.Command:
    """The click group of every command registered so far (see the module docstring)."""
    app.info.cls = LazyGroup
    return typer.main.get_command(app)


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
            metavar="PATH",
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
