"""`forge-tmux health, recover` (registered on the shared app when imported). What health does
is `_health_run.run`; this is its Typer declaration."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

# Typer vendors click; its exception types are the only way to tell a usage error apart.
from typer._click import core as click_core
from typer._click import exceptions as click_exc
from typer.core import TyperCommand

from forge_tmux.cli._health_run import Format, plugin_unknown
from forge_tmux.cli.base import emit_json, is_root, positive, socket_dirs
from forge_tmux.cli.common import (
    DirOpt,
    JsonOpt,
    app,
    finish,
    start_logging,
    state,
)

if TYPE_CHECKING:
    from forge_tmux.orphans import RecoverReport, Recovery


TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Seconds a live server may take to answer list-sessions before it counts as hung "
        "(default 2, or health.timeout in the config).",
    ),
]


def _nagios_requested(args: list[str]) -> bool:
    return "--format=nagios" in args or any(
        pair == ("--format", "nagios") for pair in itertools.pairwise(args)
    )


class _PluginCommand(TyperCommand):
    """`health`, whose usage errors under `--format nagios` are the plugin's UNKNOWN: one line on
    stdout and exit 3 (monitoring-plugins guidelines), not forge-tmux's exit 2 on stderr, which
    a plugin runner would show as CRITICAL."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click_core.Context | None = None,
        **extra: Any,
    ) -> click_core.Context:
        nagios = _nagios_requested(args)  # before parsing: click's parser consumes `args`
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click_exc.UsageError as exc:
            if nagios:
                _plugin_unknown(exc.format_message())
            raise

    def invoke(self, ctx: click_core.Context) -> Any:
        # Bad usage found by the command itself: _health_run.run answers it as the plugin.
        try:
            return super().invoke(ctx)
        except click_exc.UsageError as exc:
            if ctx.params.get("fmt") == Format.NAGIOS:  # the raw value: a str
                _plugin_unknown(exc.format_message())
            raise


def _plugin_unknown(message: str) -> None:
    finish(plugin_unknown(message))


ThresholdOpt = list[str] | None


@app.command(cls=_PluginCommand)
def health(
    ctx: typer.Context,
    dirs: DirOpt = None,
    all_users: Annotated[
        bool,
        typer.Option(
            "--all-users",
            help="Also every tmux-* directory under the socket root (read-only; as non-root, "
            "what cannot be reached is unknown).",
        ),
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.ROW,
    json_out: JsonOpt = False,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            metavar="PATH",
            help="Write the report to PATH atomically instead of stdout "
            "(for node_exporter's textfile collector).",
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when a dead socket or a hung server is found.")
    ] = False,
    timeout: TimeoutOpt = None,
    warning: Annotated[
        ThresholdOpt,
        typer.Option(
            "--warning",
            "-w",
            metavar="[STATE=]RANGE",
            help="With --format nagios: WARNING when a count is outside RANGE (standard plugin "
            "range syntax: 5, 10:, ~:10, @1:3). STATE is one of live, dead, hung, unknown, "
            "orphaned, sessions; a bare RANGE means dead, hung and orphaned. Repeatable or "
            "comma-separated. Default: dead=0,orphaned=0.",
        ),
    ] = None,
    critical: Annotated[
        ThresholdOpt,
        typer.Option(
            "--critical",
            "-c",
            metavar="[STATE=]RANGE",
            help="With --format nagios: CRITICAL when a count is outside RANGE, as for "
            "--warning. Default: hung=0.",
        ),
    ] = None,
    events: Annotated[
        bool,
        typer.Option(
            "--events",
            help="Also report what changed since the previous --events run (a server gone, "
            "hung, orphaned, recovered; each once), remembered in the state directory apart "
            "from the notifier's memory. Row and JSON formats only.",
        ),
    ] = False,
) -> None:
    """Read-only socket health: live, dead, hung, unknown; never starts or removes anything.

    Exit 0, or with --check 1 when a socket is dead or a server hung; with --format nagios the
    plugin codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN: could not check, or bad usage).
    """
    from forge_tmux.cli._health_run import run  # noqa: PLC0415 - keep --help fast

    finish(
        run(
            state(ctx),
            dirs,
            all_users,
            fmt,
            json_out,
            output,
            check,
            timeout,
            warning,
            critical,
            events,
        )
    )


@app.command()
def recover(
    ctx: typer.Context,
    dirs: DirOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Prove and report; send no signal.")
    ] = False,
    pids: Annotated[
        list[int] | None,
        typer.Option("--pid", metavar="PID", help="Only this orphaned server (repeatable)."),
    ] = None,
    json_out: JsonOpt = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", metavar="SECONDS", help="Seconds to wait for a socket to come back."
        ),
    ] = 5.0,
) -> None:
    """Bring back the deleted sockets of your own orphaned tmux servers with SIGUSR1.

    Only after proving (the kernel's sock_diag) which path each server listened on and that
    nothing else listens there now. Only your own servers are signalled; as root, other users'
    orphans in the given directories are listed and refused (their owner runs recover). Exit 0
    when every orphan was recovered (or would be) or none was found, 1 when any was refused or
    failed.
    """
    start_logging(ctx)
    within = frozenset(os.path.abspath(d) for d in socket_dirs(state(ctx).config, dirs))
    report = _recover(within, pids or (), dry_run, positive(timeout, "--timeout"))
    _log_recoveries(report.recoveries)
    if json_out:
        emit_json(report.to_json())
    elif report.error is None:
        typer.echo("\n".join([*(r.line() for r in report.recoveries), report.summary()]))
    if report.error is not None:
        typer.echo(f"forge-tmux: error: {report.error}", err=True)
    finish(0 if report.ok else 1)


def _recover(
    within: frozenset[str], pids: Sequence[int], dry_run: bool, timeout: float
) -> RecoverReport:
    from forge_tmux import orphans as core  # noqa: PLC0415
    from forge_tmux.errors import OrphansUnknown  # noqa: PLC0415

    try:
        # Root sees every user's orphans in the given directories and refuses the others'
        # with the reason (their owner runs recover); a user sees only their own.
        found = core.orphaned_servers(within, uid=None if is_root() else os.geteuid())
    except OrphansUnknown as exc:
        return core.RecoverReport(dry_run, error=f"cannot look for orphaned servers: {exc}")
    return core.RecoverReport(
        dry_run, core.recover(found, pids=pids, dry_run=dry_run, timeout=timeout)
    )


def _log_recoveries(results: Sequence[Recovery]) -> None:
    import logging  # noqa: PLC0415

    from forge_tmux.orphans import RecoverAction  # noqa: PLC0415

    log = logging.getLogger("forge_tmux.recover")
    for r in results:
        if r.action is RecoverAction.RECOVERED:
            log.log(25, "recovered the socket of tmux server %d at %s", r.pid, r.path)
        elif not r.ok:
            log.warning("tmux server %d at %s %s: %s", r.pid, r.path, r.action.value, r.reason)
