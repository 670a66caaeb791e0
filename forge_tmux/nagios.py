"""`health --format nagios` as a monitoring plugin: thresholds, status, long output, perfdata.

It follows the monitoring-plugins development guidelines
(https://www.monitoring-plugins.org/doc/guidelines.html):

- Thresholds are ranges in the standard syntax: `10` (alert outside 0..10), `10:` (below 10),
  `~:10` (above 10), `10:20` (outside 10..20), `@10:20` (inside 10..20).
- One scheme for every counted state: `-w/--warning` and `-c/--critical` take `STATE=RANGE`
  (repeatable, or comma-separated), STATE one of `live dead hung unknown orphaned sessions`.
  A bare `RANGE` applies to the three problem states (dead, hung, orphaned) at once. What is not
  given keeps its default, which is what 0.1 did: warning `dead=0,orphaned=0`, critical `hung=0`.
- The first line is `TMUX STATUS - summary | perfdata`; then one line per problem (socket,
  orphaned server, directory that could not be checked). The exit code is the status: 0 OK,
  1 WARNING, 2 CRITICAL, 3 UNKNOWN.
- UNKNOWN (3) when nothing worse was found but something could not be checked, and for every
  usage error, with one line on stdout: a plugin runner shows stdout and the code, and exit 2
  would page someone as CRITICAL for a typo in the command definition.

Pure functions of the health result: the CLI parses, calls `evaluate` and prints `render`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import Final, NamedTuple

from forge_tmux.errors import UsageError
from forge_tmux.health import DirCheck, DirHealth, Health, HealthResult, render_row
from forge_tmux.paths import display


class Status(IntEnum):
    """Plugin states; the value is the exit code. Worse is not simply larger (UNKNOWN is 3)."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


# The order in which states override one another: a known problem beats "could not check".
_SEVERITY: Final = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.CRITICAL: 3}

METRICS: Final = ("live", "dead", "hung", "unknown", "orphaned", "sessions")
PROBLEM_METRICS: Final = ("dead", "hung", "orphaned")


class Range(NamedTuple):
    """A threshold range: alert when the value is outside [start, end] (inside, if `inside`)."""

    start: float = 0.0
    end: float = math.inf
    inside: bool = False

    def alerts(self, value: float) -> bool:
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def __str__(self) -> str:
        """The canonical range text, as it goes into perfdata."""
        if self.start == 0 and not math.isinf(self.end):
            text = _number(self.end)
        elif math.isinf(self.end):
            text = f"{'~' if math.isinf(self.start) else _number(self.start)}:"
        else:
            start = "~" if math.isinf(self.start) else _number(self.start)
            text = f"{start}:{_number(self.end)}"
        return ("@" + text) if self.inside else text


def _number(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^(?P<at>@)?(?:(?P<start>{_NUMBER}|~)?(?P<colon>:))?(?P<end>{_NUMBER})?$")


def parse_range(text: str) -> Range:
    """A range in the guidelines' syntax; UsageError for anything else."""
    match = _RANGE.match(text.strip())
    if match is None or (match["start"] is None and match["end"] is None):
        raise UsageError(f"invalid range {text!r} (e.g. 0, 5, 10:, ~:10, 10:20, @10:20)")
    raw = match["start"]
    start = -math.inf if raw == "~" else float(raw or 0)
    end = float(match["end"]) if match["end"] is not None else math.inf
    if start > end:
        raise UsageError(f"invalid range {text!r}: start is greater than end")
    return Range(start, end, inside=bool(match["at"]))


Thresholds = dict[str, Range]

DEFAULT_WARNING: Final[Thresholds] = {"dead": Range(0, 0), "orphaned": Range(0, 0)}
DEFAULT_CRITICAL: Final[Thresholds] = {"hung": Range(0, 0)}


def parse_thresholds(specs: Iterable[str], option: str, defaults: Thresholds) -> Thresholds:
    """`STATE=RANGE` or a bare `RANGE` (the problem states), comma-separated or repeated,
    over the defaults."""
    chosen = dict(defaults)
    for spec in specs:
        for item in spec.split(","):
            name, sep, text = item.partition("=")
            if not sep:
                name, text = "", item
            name = name.strip()
            if name and name not in METRICS:
                raise UsageError(f"{option}: unknown state {name!r} (one of {', '.join(METRICS)})")
            threshold = parse_range(text)
            for metric in [name] if name else PROBLEM_METRICS:
                chosen[metric] = threshold
    return chosen


class Verdict(NamedTuple):
    status: Status
    values: dict[str, float]
    warning: Thresholds
    critical: Thresholds
    details: tuple[str, ...]  # one line each: a problem socket, orphan, unchecked directory
    duration_s: float
    summary: str


def _values(result: HealthResult) -> dict[str, float]:
    counts = {h.value: float(result.count(h)) for h in Health}
    counts["orphaned"] = float(len(result.orphans))
    counts["sessions"] = float(result.sessions)
    return counts


def _clean(text: str) -> str:
    """One line without `|`: a plugin runner reads everything after a `|` as perfdata."""
    return "".join("?" if c == "|" or not c.isprintable() else c for c in text)


def _unchecked(result: HealthResult, required_dirs: Sequence[str]) -> list[DirHealth]:
    """Directories whose sockets went unseen: unreadable ones, and named ones that are missing."""
    return [
        d
        for d in result.dirs
        if d.status is DirCheck.UNREADABLE
        or (d.status is DirCheck.MISSING and d.path in required_dirs)
    ]


def _details(result: HealthResult, required_dirs: Sequence[str]) -> list[str]:
    lines = [
        f"{s.state.value}: {display(s.path)} ({s.reason})"
        for s in result.sockets
        if s.state is not Health.LIVE
    ]
    lines += [f"orphaned: pid {o.pid} {display(o.path)} ({o.reason})" for o in result.orphans]
    lines += [
        f"unchecked: {display(d.path)} ({d.reason or d.status.value})"
        for d in _unchecked(result, required_dirs)
    ]
    if result.orphan_error:
        lines.append(f"unchecked: orphaned servers ({result.orphan_error})")
    return [_clean(line) for line in lines]


def evaluate(
    result: HealthResult,
    warning: Thresholds = DEFAULT_WARNING,
    critical: Thresholds = DEFAULT_CRITICAL,
    required_dirs: Sequence[str] = (),
) -> Verdict:
    """The plugin's status: CRITICAL or WARNING from the thresholds; else UNKNOWN when something
    could not be checked (an unreadable directory, an unknown socket, no orphan check, or a
    directory in `required_dirs`, those named on the command line, that does not exist)."""
    values = _values(result)
    status = Status.OK
    for metric, value in values.items():
        if metric in critical and critical[metric].alerts(value):
            found = Status.CRITICAL
        elif metric in warning and warning[metric].alerts(value):
            found = Status.WARNING
        else:
            continue
        status = max(status, found, key=_SEVERITY.__getitem__)
    if status is Status.OK and (result.incomplete or _unchecked(result, required_dirs)):
        status = Status.UNKNOWN
    return Verdict(
        status=status,
        values=values,
        warning=warning,
        critical=critical,
        details=tuple(_details(result, required_dirs)),
        duration_s=result.duration_s,
        summary=render_row(result),
    )


def perfdata(verdict: Verdict) -> str:
    """`label=value[UOM];warn;crit;min;max` for each metric, then the check's own duration."""
    items = []
    for metric, value in verdict.values.items():
        warn = verdict.warning.get(metric, "")
        crit = verdict.critical.get(metric, "")
        items.append(f"{metric}={_number(value)};{warn};{crit};0")
    items.append(f"duration={verdict.duration_s:.3f}s;;;0")
    return " ".join(items)


def render(verdict: Verdict) -> str:
    head = f"TMUX {verdict.status.name} - {verdict.summary} | {perfdata(verdict)}"
    return "\n".join([head, *verdict.details])


def unknown(message: str) -> str:
    """The one line for a check that could not run (usage errors included)."""
    return f"TMUX UNKNOWN - {_clean(' '.join(message.split()))}"
