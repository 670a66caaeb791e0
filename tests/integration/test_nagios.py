"""`health --format nagios` read the way a plugin runner (Nagios, Icinga, Naemon) reads it.

The parser below follows the monitoring-plugins guidelines on its own, independent of
`forge_tmux.nagios`: first line `TEXT | PERFDATA`, long output after it, perfdata items
`'label'=value[UOM];[warn];[crit];[min];[max]`, ranges `[@][start:][end]`.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass

import pytest

from forge_tmux import nagios
from forge_tmux.errors import UsageError
from forge_tmux.health import DirCheck, DirHealth, Health, HealthResult, SocketHealth
from forge_tmux_testing.cli import Cli
from forge_tmux_testing.health_samples import sample
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux

# --- an independent plugin-output parser ----------------------------------------------------

_PERF_ITEM = re.compile(
    r"^(?P<label>'[^']+'|[^'= ]+)=(?P<value>-?\d+(?:\.\d+)?)(?P<uom>s|ms|us|%|B|KB|MB|TB|c)?"
    r"(?:;(?P<warn>[^;]*)(?:;(?P<crit>[^;]*)(?:;(?P<min>[^;]*)(?:;(?P<max>[^;]*))?)?)?)?$"
)
_RANGE = re.compile(r"^@?(?:(?:~|-?\d+(?:\.\d+)?)?:)?(?:-?\d+(?:\.\d+)?)?$")
EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


@dataclass
class PluginOutput:
    status: str
    text: str
    perf: dict[str, tuple[float, str, str, str, str]]  # value, uom, warn, crit, min
    long: list[str]


def parse_plugin(out: str) -> PluginOutput:
    first, *long = out.rstrip("\n").split("\n")
    text, _, perf_text = first.partition("|")
    match = re.match(r"^TMUX (OK|WARNING|CRITICAL|UNKNOWN) - ", text)
    assert match, first
    perf: dict[str, tuple[float, str, str, str, str]] = {}
    for item in perf_text.split():
        m = _PERF_ITEM.match(item)
        assert m, f"invalid perfdata item {item!r}"
        for part in ("warn", "crit"):
            assert _RANGE.match(m[part] or ""), f"invalid range in {item!r}"
        perf[m["label"]] = (float(m["value"]), m["uom"] or "", m["warn"], m["crit"], m["min"])
    assert all("|" not in line for line in long)  # a second `|` would start more perfdata
    return PluginOutput(match[1], text[match.end() :].strip(), perf, long)


# --- ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "alerting", "quiet"),
    [  # the guidelines' table
        ("10", [-1, 11, 10.5], [0, 5, 10]),
        ("10:", [9, -3], [10, 11, 1e9]),
        ("~:10", [11, 10.01], [10, -1e9, 0]),
        ("10:20", [9, 21], [10, 15, 20]),
        ("@10:20", [10, 15, 20], [9, 21]),
        ("0", [1, -1], [0]),
        ("-5:-1", [0, -6], [-5, -1]),
        ("1.5:2.5", [1.4, 2.6], [2]),
    ],
)
def test_range_semantics(text: str, alerting: list[float], quiet: list[float]) -> None:
    r = nagios.parse_range(text)
    assert [v for v in alerting if not r.alerts(v)] == []
    assert [v for v in quiet if r.alerts(v)] == []
    # Rendered back, it means the same and is valid perfdata range syntax.
    assert nagios.parse_range(str(r)) == r
    assert _RANGE.match(str(r))


@pytest.mark.parametrize(
    "text", ["", "abc", "20:10", "1:2:3", "@", ":", "nan", "inf", "~", "1e3", "10:~", "5 6"]
)
def test_bad_ranges_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="invalid range"):
        nagios.parse_range(text)


def test_threshold_scheme() -> None:
    base = nagios.DEFAULT_WARNING
    assert nagios.parse_thresholds([], "-w", base) == base
    bare = nagios.parse_thresholds(["2"], "-w", base)
    assert {k: str(v) for k, v in bare.items()} == {"dead": "2", "hung": "2", "orphaned": "2"}
    mixed = nagios.parse_thresholds(["dead=3,live=1:", "sessions=@0"], "-w", base)
    assert {k: str(v) for k, v in mixed.items()} == {
        "dead": "3",
        "orphaned": "0",
        "live": "1:",
        "sessions": "@0",
    }
    with pytest.raises(UsageError, match="unknown state 'zombie'"):
        nagios.parse_thresholds(["zombie=1"], "-w", base)


# --- status and output of pure results --------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "status"),
    [  # the defaults are 0.1's mapping
        (sample(), "OK"),
        (sample(Health.LIVE), "OK"),
        (sample(Health.LIVE, Health.DEAD), "WARNING"),
        (sample(Health.LIVE, orphans=1), "WARNING"),
        (sample(Health.DEAD, Health.HUNG, Health.UNKNOWN), "CRITICAL"),
        (sample(Health.UNKNOWN), "UNKNOWN"),
        (sample(Health.LIVE, dirs=DirCheck.UNREADABLE), "UNKNOWN"),
        (sample(Health.LIVE, dirs=DirCheck.MISSING), "OK"),
    ],
)
def test_default_status(result: HealthResult, status: str) -> None:
    verdict = nagios.evaluate(result)
    out = parse_plugin(nagios.render(verdict))
    assert (out.status, verdict.status) == (status, EXIT[status])
    assert out.text.startswith("tmux sockets: ")
    problems = [s for s in result.sockets if s.state is not Health.LIVE]
    assert len(out.long) == len(problems) + len(result.orphans) + (
        result.dirs[0].status is DirCheck.UNREADABLE
    )


def test_perfdata_carries_the_thresholds() -> None:
    verdict = nagios.evaluate(
        sample(Health.LIVE, Health.DEAD),
        nagios.parse_thresholds(["dead=2"], "-w", nagios.DEFAULT_WARNING),
        nagios.parse_thresholds(["live=1:"], "-c", nagios.DEFAULT_CRITICAL),
    )
    out = parse_plugin(nagios.render(verdict))
    assert out.status == "OK"  # one dead socket is inside dead=2
    assert out.perf["dead"] == (1.0, "", "2", "", "0")
    assert out.perf["live"] == (1.0, "", "", "1:", "0")
    assert out.perf["hung"] == (0.0, "", "", "0", "0")
    assert out.perf["orphaned"][2] == "0"
    assert out.perf["duration"][:2] == (0.5, "s")


def test_named_missing_directory_is_unknown() -> None:
    result = sample(dirs=DirCheck.MISSING)
    assert nagios.evaluate(result).status is nagios.Status.OK  # tmux's own dir, not made yet
    verdict = nagios.evaluate(result, required_dirs=["/t"])
    out = parse_plugin(nagios.render(verdict))
    assert (out.status, out.long) == ("UNKNOWN", ["unchecked: /t (missing)"])


def test_long_output_cannot_inject_perfdata() -> None:
    hostile = SocketHealth("/t/a|b=1", Health.DEAD, None, "x | y=2\nUNKNOWN", None, 0)
    result = HealthResult((DirHealth("/t", DirCheck.CHECKED),), (hostile,), timestamp=1.0)
    out = parse_plugin(nagios.render(nagios.evaluate(result)))
    assert out.long == ["dead: /t/a?b=1 (x ? y=2?UNKNOWN)"]
    assert set(out.perf) == {*nagios.METRICS, "duration"}


# --- the command, against real tmux servers -------------------------------------------------


@needs_tmux
def test_thresholds_and_long_output(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.start("fine")
    tmux_env.stale("gone")
    stopped = tmux_env.start("stopped")
    os.kill(stopped.pid, signal.SIGSTOP)  # the fixture's finalizer sends SIGCONT, then SIGKILL

    default = cli("health", "--format", "nagios", "--timeout", "1")
    out = parse_plugin(default.out)
    assert (default.code, out.status) == (2, "CRITICAL")
    assert sorted(line.split(":")[0] for line in out.long) == ["dead", "hung"]
    assert any(line.endswith(")") and "/gone (" in line for line in out.long)

    relaxed = cli("health", "--format", "nagios", "-w", "2", "-c", "hung=2", "--timeout", "1")
    assert (relaxed.code, parse_plugin(relaxed.out).status) == (0, "OK")
    assert parse_plugin(relaxed.out).perf["dead"][2:4] == ("2", "")

    strict = cli("health", "--format", "nagios", "--critical", "dead=0", "-c", "hung=5")
    assert (strict.code, parse_plugin(strict.out).status) == (2, "CRITICAL")

    few = cli("health", "--format", "nagios", "-w", "2", "-c", "hung=5,live=2:")
    assert (few.code, parse_plugin(few.out).status) == (2, "CRITICAL")  # only 1 live


@needs_tmux
@pytest.mark.parametrize(
    "args",
    [
        ["-w", "abc"],
        ["-c", "zombie=1"],
        ["-w", "5:1"],
        ["--timeout", "soon"],
        ["--timeout", "-1"],
        ["--no-such-option"],
        ["--json"],
        ["--events"],
        ["--output", "/nonexistent-dir/x"],
    ],
)
def test_usage_errors_are_unknown_on_stdout(tmux_env: TmuxEnv, cli: Cli, args: list[str]) -> None:
    for form in (["--format", "nagios"], ["--format=nagios"]):
        result = cli("health", *form, *args)
        assert result.code == 3, result
        assert result.out.startswith("TMUX UNKNOWN - ")
        assert result.out.count("\n") == 1
        assert "Traceback" not in result.err


@needs_tmux
def test_bad_config_is_unknown(tmux_env: TmuxEnv, cli: Cli) -> None:
    config = os.path.join(tmux_env.root, "bad.toml")
    with open(config, "w") as fh:
        fh.write("[health]\ntimeout = 'soon'\n")
    result = cli("--config", config, "health", "--format", "nagios")
    assert (result.code, result.out.count("\n")) == (3, 1)
    assert result.out.startswith("TMUX UNKNOWN - ")


@needs_tmux
def test_named_missing_dir_and_other_formats(tmux_env: TmuxEnv, cli: Cli) -> None:
    missing = os.path.join(tmux_env.root, "typo")
    result = cli("health", "--format", "nagios", "--dir", missing)
    out = parse_plugin(result.out)
    assert (result.code, out.status) == (3, "UNKNOWN")
    assert out.long == [f"unchecked: {missing} (missing)"] or out.long[0].startswith(
        f"unchecked: {missing} ("
    )
    # Outside nagios the thresholds are a usage error of forge-tmux's own kind: exit 2, stderr.
    other = cli("health", "-w", "1")
    assert (other.code, other.out) == (2, "")
    assert "--format nagios" in other.err
