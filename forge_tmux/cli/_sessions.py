"""`forge-tmux ls, attach, peek, kill, save` and the hook's `session-closed` (registered on the
shared app when imported)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from forge_tmux.cli.base import emit_json, socket_dirs
from forge_tmux.cli.common import (
    DirOpt,
    JsonOpt,
    app,
    finish,
    start_logging,
    state,
)
from forge_tmux.tmux import TmuxNotFound

if TYPE_CHECKING:
    from forge_tmux.sessions import Target

NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME", help="Session name, as given to spawn (never the hashed label)."
    ),
]
SocketOpt = Annotated[
    str | None,
    typer.Option("--socket-name", metavar="LABEL", help="The socket, when NAME runs on several."),
]


def _fail(json_out: bool, message: str) -> None:
    if json_out:
        emit_json({"ok": False, "error": message})
    else:
        sys.stderr.write(f"forge-tmux: {message}\n")
    finish(1)


def _target(ctx: typer.Context, name: str, socket_name: str | None, json_out: bool) -> Target:
    from forge_tmux import sessions  # noqa: PLC0415

    cfg = state(ctx).config
    try:
        return sessions.resolve(
            name, socket_dirs(cfg, None), socket_name=socket_name, timeout=cfg.health.timeout
        )
    except (sessions.NotRunning, sessions.Refused, TmuxNotFound) as exc:
        _fail(json_out, str(exc))
    raise AssertionError  # unreachable: _fail exits


@app.command("ls")
def ls(ctx: typer.Context, dirs: DirOpt = None, json_out: JsonOpt = False) -> None:
    """Every tmux session on every socket: name, socket, state, windows, attached clients, age,
    command, and whether forge-tmux spawned it. Read-only: never starts a server.

    Exit 0 whenever the listing was made (no sessions, dead sockets and hung servers are
    shown, not failures: `health --check` is the command that fails on them).
    """
    from forge_tmux import sessions  # noqa: PLC0415

    start_logging(ctx)
    cfg = state(ctx).config
    listing = sessions.list_sessions(
        socket_dirs(cfg, dirs), timeout=cfg.health.timeout, parallel=cfg.health.parallel
    )
    if json_out:
        emit_json(listing.to_json())
    else:
        print(sessions.render_listing(listing))
    finish(0)


@app.command()
def attach(
    ctx: typer.Context, name: NameArg, socket_name: SocketOpt = None, json_out: JsonOpt = False
) -> None:
    """Attach to session NAME on its own socket. Inside tmux it opens a new window of the
    current tmux attached to it (tmux cannot switch a client to another server).

    Exit 1 when NAME is not running (the message lists close names).
    """
    import os  # noqa: PLC0415

    from forge_tmux import sessions  # noqa: PLC0415

    start_logging(ctx)
    target = _target(ctx, name, socket_name, json_out)
    try:
        plan = sessions.attach_plan(target)
    except TmuxNotFound as exc:
        _fail(json_out, str(exc))
    if json_out:
        emit_json({"ok": True, "argv": list(plan.argv), "message": plan.message})
        finish(0)
    if plan.replace:
        sys.stdout.flush()
        os.execvpe(plan.argv[0], list(plan.argv), plan.env)  # noqa: S606 - an argv, no shell
    from forge_tmux import procs  # noqa: PLC0415

    # The one runner: a timeout kills it and is an answer, never a traceback.
    done = procs.run(plan.argv, env=plan.env, timeout=10)
    if not done.ok:
        _fail(False, f"could not open a window for {target.where()}: {done.why}")
    print(plan.message)
    finish(0)


@app.command()
def peek(
    ctx: typer.Context,
    name: NameArg,
    lines: Annotated[
        int, typer.Option("--lines", "-n", metavar="N", help="How many lines (default 20).")
    ] = 20,
    socket_name: SocketOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The last N lines of session NAME's active pane, without attaching."""
    from forge_tmux import sessions  # noqa: PLC0415
    from forge_tmux.errors import UsageError  # noqa: PLC0415

    start_logging(ctx)
    if not 1 <= lines <= sessions.PEEK_MAX:
        raise UsageError(f"--lines must be between 1 and {sessions.PEEK_MAX}, not {lines}")
    target = _target(ctx, name, socket_name, json_out)
    try:
        text = sessions.peek(target, lines, timeout=state(ctx).config.health.timeout)
    except (sessions.NotRunning, TmuxNotFound) as exc:
        _fail(json_out, str(exc))
    if json_out:
        emit_json(
            {"ok": True, "session": target.session, "socket_name": target.socket_name, "text": text}
        )
    else:
        print(text)
    finish(0)


@app.command()
def kill(
    ctx: typer.Context, name: NameArg, socket_name: SocketOpt = None, json_out: JsonOpt = False
) -> None:
    """End session NAME on its own socket; when it was the last, the stale socket file the
    server leaves is removed too. Sessions on protected sockets (homebase) are never killed.

    Exit 1 when NAME is not running or is protected.
    """
    from forge_tmux import sessions, snapshot  # noqa: PLC0415

    start_logging(ctx)
    cfg = state(ctx).config
    target = _target(ctx, name, socket_name, json_out)
    try:
        result = sessions.kill(
            target,
            protected_sockets=cfg.protected_sockets,
            timeout=cfg.health.timeout,
            sweep_timeout=cfg.sweep.timeout,
        )
    except (sessions.NotRunning, sessions.Refused, TmuxNotFound) as exc:
        _fail(json_out, str(exc))
    snapshot.forget(target.socket_name, target.session)  # ended on purpose: never restored
    if json_out:
        emit_json(result.to_json())
    else:
        print(result.message())
    finish(0)


@app.command()
def save(
    ctx: typer.Context,
    shutdown: Annotated[
        bool,
        typer.Option(
            "--shutdown",
            help="Saved at shutdown: until the next save or restore, sessions that close are "
            "not taken as ended on purpose (their servers are being stopped).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write the snapshot of the sessions forge-tmux spawned (state directory, atomic), for
    `post-boot --restore`. Sessions whose server crashed stay in it; ended ones leave it."""
    from forge_tmux import snapshot  # noqa: PLC0415

    start_logging(ctx)
    cfg = state(ctx).config
    try:
        result = snapshot.save(
            socket_dirs(cfg, None), timeout=cfg.health.timeout, shutdown=shutdown
        )
    except OSError as exc:
        _fail(json_out, f"cannot write the snapshot: {exc}")
    if json_out:
        emit_json(result.to_json())
    else:
        print(result.message())
    finish(0)


@app.command("session-closed", hidden=True)
def session_closed(
    socket_path: Annotated[str, typer.Option("--socket-path", metavar="PATH")],
) -> None:
    """Run by the session-closed hook of the servers forge-tmux starts (see snapshot)."""
    from forge_tmux import snapshot  # noqa: PLC0415

    try:
        snapshot.session_closed(socket_path)
    except OSError:
        finish(1)
    finish(0)
