"""`forge-tmux health, recover` (registered on the shared app when imported)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from forge_tmux.cli.common import (
    DirOpt,
    JsonOpt,
    app,
    emit_json,
    finish,
    is_root,
    positive,
    socket_dirs,
    start_logging,
    state,
)
from forge_tmux.errors import UsageError

if TYPE_CHECKING:
    from forge_tmux.health import HealthResult
    from forge_tmux.healthstate import Event
    from forge_tmux.janitorstate import Labelled
    from forge_tmux.orphans import Recovery


class Format(StrEnum):
    ROW = "row"
    JSON = "json"
    PROMETHEUS = "prometheus"
    NAGIOS = "nagios"


TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Seconds a live server may take to answer list-sessions before it counts as hung "
        "(default 2, or health.timeout in the config).",
    ),
]


@app.command()
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
            help="Write the report to FILE atomically instead of stdout "
            "(for node_exporter's textfile collector).",
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when a dead socket or a hung server is found.")
    ] = False,
    timeout: TimeoutOpt = None,
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
    Nagios codes (0 OK, 1 WARNING dead/orphaned, 2 CRITICAL hung, 3 UNKNOWN could not check).
    """
    from forge_tmux import health as core  # noqa: PLC0415 - keep --help fast
    from forge_tmux.paths import tmux_socket_root  # noqa: PLC0415

    start_logging(ctx)
    cfg = state(ctx).config
    if output is not None and not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise UsageError(f"--output: directory of {output} does not exist")
    chosen = socket_dirs(cfg, dirs)
    if all_users:
        chosen += core.all_user_dirs(tmux_socket_root())
    result = core.collect(
        chosen,
        timeout=positive(timeout, "--timeout") if timeout is not None else cfg.health.timeout,
        parallel=cfg.health.parallel,
        orphan_uid=None if all_users else -1,
    )
    if json_out and fmt not in (Format.ROW, Format.JSON):
        raise UsageError(f"--json conflicts with --format {fmt.value}")
    fmt = Format.JSON if json_out else fmt
    if events and fmt not in (Format.ROW, Format.JSON):
        raise UsageError(f"--events goes with --format row or json, not {fmt.value}")
    news = _remember(result) if events else []
    if fmt is Format.JSON:
        data = core.to_json(result)
        if events:
            data["events"] = [event.to_json() for event in news]
        text = _json_text(data)
    else:
        text = {
            Format.ROW: core.render_row,
            Format.PROMETHEUS: lambda r: core.render_prometheus(r, _janitor(all_users, chosen)),
            Format.NAGIOS: core.render_nagios,
        }[fmt](result)
        # The row stays the first line, as fleet-probe scripts expect; news follows, one a line.
        text = "\n".join([text.rstrip("\n"), *(event.describe() for event in news)])
    _write(text, output)
    if fmt is Format.NAGIOS:
        finish(core.NAGIOS_EXIT[core.nagios_status(result)])
    finish(1 if check and result.problem else 0)


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


def _json_text(data: dict[str, object]) -> str:
    import json  # noqa: PLC0415

    return json.dumps(data, ensure_ascii=False)


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text.rstrip("\n") + "\n")
        sys.stdout.flush()
        return
    from forge_tmux.healthstate import write_atomic  # noqa: PLC0415

    try:
        # 0644: node_exporter usually runs as another user and must read the file.
        write_atomic(output, text if text.endswith("\n") else text + "\n", 0o644)
    except OSError as exc:
        typer.echo(f"forge-tmux: error: cannot write {output}: {exc.strerror or exc}", err=True)
        finish(1)


@app.command()
def recover(
    ctx: typer.Context,
    dirs: DirOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Prove and report; send no signal.")
    ] = False,
    pids: Annotated[
        list[int] | None,
        typer.Option("--pid", help="Only this orphaned server (repeatable)."),
    ] = None,
    json_out: JsonOpt = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds to wait for a socket to come back."),
    ] = 5.0,
) -> None:
    """Bring back the deleted sockets of your own orphaned tmux servers with SIGUSR1.

    Only after proving (ss -xlpe) which path each server listened on and that nothing else
    listens there now. Only your own servers are signalled; as root, other users' orphans in the
    given directories are listed and refused (their owner runs recover). Exit 0 when every
    orphan was recovered (or would be) or none was found, 1 when any was refused or failed.
    """
    from forge_tmux import orphans as core  # noqa: PLC0415
    from forge_tmux.paths import display  # noqa: PLC0415

    start_logging(ctx)
    within = frozenset(os.path.abspath(d) for d in socket_dirs(state(ctx).config, dirs))
    try:
        # Root sees every user's orphans in the given directories and refuses the others'
        # with the reason (their owner runs recover); a user sees only their own.
        found = core.orphaned_servers(within, uid=None if is_root() else os.geteuid())
        results = core.recover(
            found, pids=pids or (), dry_run=dry_run, timeout=positive(timeout, "--timeout")
        )
    except core.SsUnavailable as exc:
        message = f"cannot look for orphaned servers: {exc}"
        if json_out:
            emit_json({"ok": False, "dry_run": dry_run, "orphans": [], "error": message})
        typer.echo(f"forge-tmux: error: {message}", err=True)
        finish(1)
    _log_recoveries(results)
    ok = all(r.ok for r in results)
    if json_out:
        emit_json(
            {
                "ok": ok,
                "dry_run": dry_run,
                "orphans": [
                    {
                        "pid": r.pid,
                        "path": display(r.path),
                        "action": r.action.value,
                        "reason": r.reason,
                    }
                    for r in results
                ],
            }
        )
    else:
        for r in results:
            typer.echo(f"{r.action.value:13} pid {r.pid} {display(r.path)}: {r.reason}")
        typer.echo(f"recover: {len(results)} orphaned server(s), {_summary(results)}")
    finish(0 if ok else 1)


def _summary(results: list[Recovery]) -> str:
    from forge_tmux.orphans import RecoverAction  # noqa: PLC0415

    counts = dict.fromkeys(RecoverAction, 0)
    for r in results:
        counts[r.action] += 1
    return ", ".join(f"{n} {a.value}" for a, n in counts.items())


def _log_recoveries(results: list[Recovery]) -> None:
    import logging  # noqa: PLC0415

    from forge_tmux.orphans import RecoverAction  # noqa: PLC0415

    log = logging.getLogger("forge_tmux.recover")
    for r in results:
        if r.action is RecoverAction.RECOVERED:
            log.log(25, "recovered the socket of tmux server %d at %s", r.pid, r.path)
        elif not r.ok:
            log.warning("tmux server %d at %s %s: %s", r.pid, r.path, r.action.value, r.reason)
