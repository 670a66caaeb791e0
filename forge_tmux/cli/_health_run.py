"""What `forge-tmux health` does once its options are parsed, by Typer (`_health.py`) or by
the fast path (`_fast.py`): no Typer here. The monitoring timer and plugin runners run it every
minute or so on every host."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from forge_tmux.cli.base import State, json_text, positive, socket_dirs
from forge_tmux.errors import UsageError

if TYPE_CHECKING:
    from forge_tmux.health import HealthResult
    from forge_tmux.healthstate import Event
    from forge_tmux.janitorstate import Labelled
    from forge_tmux.nagios import Thresholds


class Format(StrEnum):
    ROW = "row"
    JSON = "json"
    PROMETHEUS = "prometheus"
    NAGIOS = "nagios"


def run(
    st: State,
    dirs: list[str] | None = None,
    all_users: bool = False,
    fmt: str = Format.ROW,
    json_out: bool = False,
    output: str | None = None,
    check: bool = False,
    timeout: float | None = None,
    warning: list[str] | None = None,
    critical: list[str] | None = None,
    events: bool = False,
) -> int:
    """The report; the exit code: 0, 1 with --check and a problem, or the plugin's code."""
    fmt = Format(fmt)
    try:
        return _health(
            st, dirs, all_users, fmt, json_out, output, check, timeout, warning, critical, events
        )
    except UsageError as exc:
        if fmt is Format.NAGIOS:
            return plugin_unknown(str(exc))
        raise


def plugin_unknown(message: str) -> int:
    """Bad usage under --format nagios is the plugin's UNKNOWN: one line on stdout and exit 3
    (monitoring-plugins guidelines), not forge-tmux's exit 2 on stderr, which a plugin runner
    would show as CRITICAL."""
    from forge_tmux.nagios import Status, unknown  # noqa: PLC0415

    sys.stdout.write(unknown(message) + "\n")
    sys.stdout.flush()
    return int(Status.UNKNOWN)


def _health(
    st: State,
    dirs: list[str] | None,
    all_users: bool,
    fmt: Format,
    json_out: bool,
    output: str | None,
    check: bool,
    timeout: float | None,
    warning: list[str] | None,
    critical: list[str] | None,
    events: bool,
) -> int:
    from forge_tmux import health as core  # noqa: PLC0415
    from forge_tmux.paths import tmux_socket_root  # noqa: PLC0415

    st.start_logging()
    limits = _thresholds(fmt, warning or [], critical or [])  # before the check: bad usage is fast
    fmt = _format(fmt, json_out, events)
    cfg = st.config
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
        return _nagios(result, limits, dirs or [], output)
    news = _remember(result) if events else None
    if not _write(_render(result, fmt, news, lambda: _janitor(all_users, chosen)), output):
        return 1
    return 1 if check and (result.problem or result.named_missing) else 0


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
    import logging  # noqa: PLC0415

    from forge_tmux.health import DirCheck  # noqa: PLC0415

    wanted = {os.path.abspath(d) for d in named}
    missing = tuple(
        d.path for d in result.dirs if d.status is DirCheck.MISSING and d.path in wanted
    )
    for path in missing:
        logging.getLogger(__name__).warning("--dir %s does not exist", path)
    return result._replace(named_missing=missing)


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
) -> int:
    from forge_tmux import nagios  # noqa: PLC0415

    # A directory named on the command line that is missing is a typo, not "all clear".
    required = [os.path.abspath(d) for d in named_dirs]
    verdict = nagios.evaluate(result, *limits, required_dirs=required)
    return int(verdict.status) if _write(nagios.render(verdict), output) else 1


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


def _write(text: str, output: str | None) -> bool:
    """The report to stdout or --output; False (said on stderr) when the file cannot be
    written."""
    if output is None:
        sys.stdout.write(text.rstrip("\n") + "\n")
        sys.stdout.flush()
        return True
    from forge_tmux.atomic import write_atomic  # noqa: PLC0415
    from forge_tmux.errors import NotRegularFile  # noqa: PLC0415

    try:
        # 0644: node_exporter usually runs as another user and must read the file.
        write_atomic(output, text if text.endswith("\n") else text + "\n", 0o644)
    except NotRegularFile as exc:
        raise UsageError(f"--output {exc}") from None
    except OSError as exc:
        sys.stderr.write(f"forge-tmux: error: cannot write {output}: {exc.strerror or exc}\n")
        return False
    return True


def _refuse_special(output: str) -> None:
    """--output naming a device, a FIFO, a directory or a symlink: exit 2 before any work."""
    from forge_tmux.atomic import refuse_special  # noqa: PLC0415
    from forge_tmux.errors import NotRegularFile  # noqa: PLC0415

    try:
        refuse_special(output)
    except NotRegularFile as exc:
        raise UsageError(f"--output {exc}") from None
