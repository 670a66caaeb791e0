"""`forge-tmux health, recover` (registered on the shared app when imported)."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

# Typer vendors click; its exception types are the only way to tell a usage error apart.
from typer._click import core as click_core
from typer._click import exceptions as click_exc
from typer.core import TyperCommand

from forge_tmux.cli.base import emit_json, is_root, json_text, positive, socket_dirs
from forge_tmux.cli.common import (
    DirOpt,
    JsonOpt,
    app,
    finish,
    start_logging,
    state,
)
from forge_tmux.errors import UsageError

if TYPE_CHECKING:
    from forge_tmux.health import HealthResult
    from forge_tmux.healthstate import Event
    from forge_tmux.janitorstate import Labelled
    from forge_tmux.nagios import Thresholds
    from forge_tmux.orphans import RecoverReport, Recovery


class Format(StrEnum):
    ROW = "row"
    JSON = "json"
    PROMETHEUS = "prometheus"
    NAGIOS = "nagios"


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
        try:
            return super().invoke(ctx)
        except (UsageError, click_exc.UsageError) as exc:
            if ctx.params.get("fmt") == Format.NAGIOS:  # the raw value: a str
                _plugin_unknown(str(exc) if isinstance(exc, UsageError) else exc.format_message())
            raise


def _plugin_unknown(message: str) -> None:
    from forge_tmux.nagios import Status, unknown  # noqa: PLC0415

    sys.stdout.write(unknown(message) + "\n")
    sys.stdout.flush()
    finish(Status.UNKNOWN)


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
    from forge_tmux import health as core  # noqa: PLC0415 - keep --help fast
    from forge_tmux.paths import tmux_socket_root  # noqa: PLC0415

    start_logging(ctx)
    limits = _thresholds(fmt, warning or [], critical or [])  # before the check: bad usage is fast
    fmt = _format(fmt, json_out, events)
    cfg = state(ctx).config
    _check_output(output)
    chosen = socket_dirs(cfg, dirs) + (core.all_user_dirs(tmux_socket_root()) if all_users else [])
    result = core.collect(
        chosen,
        timeout=positive(timeout, "--timeout") if timeout is not None else cfg.health.timeout,
        parallel=cfg.health.parallel,
        orphan_uid=None if all_users else -1,
    )
    if dirs:  # named on the command line: one that does not exist is a finding, not "none"
        result = _named_missing(result, dirs)
    if limits is not None:
        _nagios(result, limits, dirs or [], output)
    news = _remember(result) if events else None
    _write(_render(result, fmt, news, lambda: _janitor(all_users, chosen)), output)
    finish(1 if check and (result.problem or result.named_missing) else 0)


def _format(fmt: Format, json_out: bool, events: bool) -> Format:
    """The output format, --json being --format json; a combination that means nothing is bad
    usage."""
    if json_out and fmt not in (Format.ROW, Format.JSON):
        raise UsageError(f"--json conflicts with --format {fmt.value}")
    fmt = Format.JSON if json_out else fmt
    if events and fmt not in (Format.ROW, Format.JSON):
        raise UsageError(f"--events goes with --format row or json, not {fmt.value}")
    return fmt


def _check_output(output: str | None) -> None:
    """--output: exit 2 before any work when it cannot be written as a file."""
    if output is None:
        return
    if not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise UsageError(f"--output: directory of {output} does not exist")
    _refuse_special(output)


def _render(
    result: HealthResult,
    fmt: Format,
    news: list[Event] | None,
    janitor: Callable[[], list[Labelled]],
) -> str:
    """The report in `fmt` (not nagios); `news`: the --events (None without --events)."""
    from forge_tmux import health as core  # noqa: PLC0415

    if fmt is Format.JSON:
        data = result.to_json()
        if news is not None:
            data["events"] = [event.to_json() for event in news]
        return json_text(data)
    if fmt is Format.PROMETHEUS:
        text = core.render_prometheus(result, janitor())
    else:
        text = core.render_row(result)
    # The row stays the first line, as fleet-probe scripts expect; news follows, one a line.
    return "\n".join([text.rstrip("\n"), *(event.describe() for event in news or ())])


def _named_missing(result: HealthResult, named: list[str]) -> HealthResult:
    import dataclasses  # noqa: PLC0415
    import logging  # noqa: PLC0415

    from forge_tmux.health import DirCheck  # noqa: PLC0415

    wanted = {os.path.abspath(d) for d in named}
    missing = tuple(
        d.path for d in result.dirs if d.status is DirCheck.MISSING and d.path in wanted
    )
    for path in missing:
        logging.getLogger(__name__).warning("--dir %s does not exist", path)
    return dataclasses.replace(result, named_missing=missing)


def _thresholds(
    fmt: Format, warning: list[str], critical: list[str]
) -> tuple[Thresholds, Thresholds] | None:
    """The plugin's (warning, critical) thresholds with --format nagios, else None."""
    if fmt is not Format.NAGIOS:
        if warning or critical:
            raise UsageError("--warning/--critical go with --format nagios")
        return None
    from forge_tmux import nagios  # noqa: PLC0415

    return (
        nagios.parse_thresholds(warning, "--warning", nagios.DEFAULT_WARNING),
        nagios.parse_thresholds(critical, "--critical", nagios.DEFAULT_CRITICAL),
    )


def _nagios(
    result: HealthResult,
    limits: tuple[Thresholds, Thresholds],
    named_dirs: list[str],
    output: str | None,
) -> None:
    from forge_tmux import nagios  # noqa: PLC0415

    # A directory named on the command line that is missing is a typo, not "all clear".
    required = [os.path.abspath(d) for d in named_dirs]
    verdict = nagios.evaluate(result, *limits, required_dirs=required)
    _write(nagios.render(verdict), output)
    finish(verdict.status)


def _janitor(all_users: bool, dirs: list[str]) -> list[Labelled]:
    """The sweep records to export: the own one; with --all-users every `tmux-UID` user's, with
    a `uid` label."""
    from forge_tmux import janitorstate  # noqa: PLC0415

    if not all_users:
        return [janitorstate.Labelled(None, janitorstate.load(janitorstate.record_path()))]
    names = (os.path.basename(d) for d in dirs)
    uids = [int(n[5:]) for n in names if n.startswith("tmux-") and n[5:].isdigit()]
    return janitorstate.records_of(uids, os.geteuid())


def _remember(result: HealthResult) -> list[Event]:
    """Record this run in the `health` consumer's memory; the events new since its last run.
    A memory that cannot be written is logged, not fatal: the report itself is still right."""
    import logging  # noqa: PLC0415

    from forge_tmux import healthstate  # noqa: PLC0415

    try:
        return healthstate.update(result, consumer="health")
    except OSError as exc:
        logging.getLogger(__name__).warning(
            "cannot remember health events in %s: %s",
            healthstate.memory_path("health"),
            exc.strerror or exc,
        )
        return []


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text.rstrip("\n") + "\n")
        sys.stdout.flush()
        return
    from forge_tmux.atomic import write_atomic  # noqa: PLC0415
    from forge_tmux.errors import NotRegularFile  # noqa: PLC0415

    try:
        # 0644: node_exporter usually runs as another user and must read the file.
        write_atomic(output, text if text.endswith("\n") else text + "\n", 0o644)
    except NotRegularFile as exc:
        raise UsageError(f"--output {exc}") from None
    except OSError as exc:
        typer.echo(f"forge-tmux: error: cannot write {output}: {exc.strerror or exc}", err=True)
        finish(1)


def _refuse_special(output: str) -> None:
    """--output naming a device, a FIFO, a directory or a symlink: exit 2 before any work."""
    from forge_tmux.atomic import refuse_special  # noqa: PLC0415
    from forge_tmux.errors import NotRegularFile  # noqa: PLC0415

    try:
        refuse_special(output)
    except NotRegularFile as exc:
        raise UsageError(f"--output {exc}") from None


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
