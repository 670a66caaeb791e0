"""The command line: a thin layer that parses options, calls the core and renders its result.

Errors in the user's input become one line on stderr and exit 2, never a traceback.

Commands live in one module each (`_sweep.py`, ...), registered on the shared app when imported.
Only the module of the command being run is imported: Typer converts every registered command
at start-up, and the sweep's cold start must stay within 1.2x of `import typer` however many
commands the program grows (the lazy-subcommand pattern click documents as LazyGroup, see
`_root.py`). `--help` lists the commands from SUMMARIES without importing any of them, and
`--version` is answered before Typer is even imported, and the command lines the timers run
(`sweep`) are parsed without it (`_fast.py`).
"""

from __future__ import annotations

import importlib
import sys
from typing import Final

# command name -> module that registers it
COMMANDS: Final[dict[str, str]] = {
    "sweep": "forge_tmux.cli._sweep",
    "spawn": "forge_tmux.cli._spawn",
    "post-boot": "forge_tmux.cli._spawn",
    "audit": "forge_tmux.cli._audit",
    "units": "forge_tmux.cli._units",
    "doctor": "forge_tmux.cli._units",
    "health": "forge_tmux.cli._health",
    "recover": "forge_tmux.cli._health",
    "notify": "forge_tmux.cli._telegram",
    "boot": "forge_tmux.cli._boot",
    "bot": "forge_tmux.cli._telegram",
    "ls": "forge_tmux.cli._sessions",
    "attach": "forge_tmux.cli._sessions",
    "peek": "forge_tmux.cli._sessions",
    "kill": "forge_tmux.cli._sessions",
    "save": "forge_tmux.cli._sessions",
    "session-closed": "forge_tmux.cli._sessions",
}
# The first paragraph of each command's help, for the list in `forge-tmux --help`. A test pins
# every line to the command's own docstring; a command missing here is imported to be listed.
SUMMARIES: Final[dict[str, str]] = {
    "sweep": "Remove stale tmux sockets (no server listening); never anything else.",
    "spawn": "Start a detached tmux session NAME on its own socket (-L spawn-NAME), verified.",
    "post-boot": "Start every [[boot.sessions]] entry of the config, each on its own socket.",
    "audit": "Find tmux calls that use the shared default socket (no -L/-S) in shell scripts, "
    "Python files and unit files; print `file:line: text` for each.",
    "units": "The systemd units: render, install, uninstall, status.",
    "doctor": "Check the installation, one line per check (ok/warn/FAIL); changes nothing.",
    "health": "Read-only socket health: live, dead, hung, unknown; never starts or removes "
    "anything.",
    "recover": "Bring back the deleted sockets of your own orphaned tmux servers with SIGUSR1.",
    "notify": "Send a message to the Telegram chat, delivering the outbox first (oldest first).",
    "boot": "The boot hook: sweep, the post-boot sessions' status, the health row, and the "
    "summary to Telegram. Exit 0 unless the sweep itself failed (Telegram never changes the "
    "exit code).",
    "bot": "Run the Telegram bot (long polling): /spawn NAME [PROFILE], /health, /sweep, /help "
    "for the users in bot.allowed_user_ids / FORGE_TMUX_BOT_ALLOWED_USERS only. Stops on "
    "SIGTERM.",
    "ls": "Every tmux session on every socket: name, socket, state, windows, attached clients, "
    "age, command, and whether forge-tmux spawned it. Read-only: never starts a server.",
    "attach": "Attach to session NAME on its own socket. Inside tmux it opens a new window of the "
    "current tmux attached to it (tmux cannot switch a client to another server).",
    "peek": "The last N lines of session NAME's active pane, without attaching.",
    "kill": "End session NAME on its own socket; when it was the last, the stale socket file the "
    "server leaves is removed too. Sessions on protected sockets (homebase) are never killed.",
    "save": "Write the snapshot of the sessions forge-tmux spawned (state directory, atomic), for "
    "`post-boot --restore`. Sessions whose server crashed stay in it; ended ones leave it.",
    "session-closed": "Run by the session-closed hook of the servers forge-tmux starts (see "
    "snapshot).",
}
# Commands run by forge-tmux itself (tmux hooks), never listed in --help or the reference.
HIDDEN: Final = frozenset({"session-closed"})
# Global options that take a value, so the command name is found after them.
_VALUED_GLOBALS: Final = frozenset({"--config"})


def command_name(argv: list[str]) -> str | None:
    """The subcommand named on the command line, as click will find it, or None (help,
    --version, nothing)."""
    skip = False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg in _VALUED_GLOBALS:
            skip = True
        elif arg == "--":
            return argv[index + 1] if index + 1 < len(argv) else None
        elif not arg.startswith("-"):
            return arg
    return None


def register(argv: list[str]) -> None:
    """Import the module of the command being run. No command (help): none at all. An unknown
    name: all of them, so that click can suggest the nearest ("Did you mean 'sweep'?")."""
    name = command_name(argv)
    if name is None:
        return
    wanted = COMMANDS.get(name)
    for module in [wanted] if wanted else sorted(set(COMMANDS.values())):
        importlib.import_module(module)


def _error(message: str) -> int:
    # One line, whatever the message contained.
    text = " ".join(message.split())
    sys.stderr.write(f"forge-tmux: error: {text}\n")
    return 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        # The common case of --version needs neither Typer nor a command (see _root._version).
        from forge_tmux import __version__  # noqa: PLC0415

        sys.stdout.write(f"forge-tmux {__version__}\n")
        return 0
    from forge_tmux.cli import _fast  # noqa: PLC0415
    from forge_tmux.errors import UsageError  # noqa: PLC0415

    try:
        # The timers' command lines need no Typer (see _fast); any other goes to it.
        code = _fast.run(args)
    except UsageError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("\n")  # as click does before its Abort
        return 130
    except BrokenPipeError:
        return 1
    return _run(args) if code is None else code


def _run(args: list[str]) -> int:
    import typer  # noqa: PLC0415 - see main

    # Typer vendors click; its exception types are the only way to tell a usage error apart.
    from typer._click import exceptions as click_exc  # noqa: PLC0415

    from forge_tmux.cli._root import command_group  # noqa: PLC0415
    from forge_tmux.errors import UsageError  # noqa: PLC0415

    register(args)
    try:
        result = command_group().main(args=args, prog_name="forge-tmux", standalone_mode=False)
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
