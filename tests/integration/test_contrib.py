"""What an operator deploys from contrib/: the Prometheus rules (checked and unit-tested with
promtool: every alert fires and clears), the Alertmanager receiver (amtool check-config), and the
Grafana dashboard, whose queries may name only metrics that `forge-tmux health` exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forge_tmux_testing import REPO
from forge_tmux_testing.cli import CliResult
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux

CONTRIB = REPO / "contrib"
RULES = CONTRIB / "prometheus" / "forge-tmux.rules.yml"
RULES_TEST = CONTRIB / "prometheus" / "forge-tmux.rules.test.yml"
ALERTMANAGER = CONTRIB / "alertmanager" / "telegram.yml"
DASHBOARD = CONTRIB / "grafana" / "forge-tmux.json"
ALERTS = (
    "ForgeTmuxJanitorStale",
    "ForgeTmuxDeadSockets",
    "ForgeTmuxHungServer",
    "ForgeTmuxOrphanedServer",
    "ForgeTmuxHealthIncomplete",
    "ForgeTmuxMetricsMissing",
)


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (scripts/test installs it on Debian)")
    return found


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


# --- Prometheus rules ---------------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    done = run(tool("promtool"), "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_promtool_unit_tests_fire_and_clear_every_alert() -> None:
    done = run(tool("promtool"), "test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout + done.stderr
    text = RULES_TEST.read_text()
    for alert in ALERTS:
        # Each alert is expected to fire at some time and to be absent at a later one.
        blocks = re.findall(
            rf"eval_time: (\d+)m\n\s+alertname: {alert}\n\s+exp_alerts:( \[\])?", text
        )
        firing = [int(t) for t, empty in blocks if not empty]
        clear = [int(t) for t, empty in blocks if empty]
        assert firing, f"{alert} never fires in the test"
        assert clear and max(clear) > min(firing), f"{alert} never clears after firing"


def test_the_rule_tests_can_fail(tmp_path: Path) -> None:
    # The same test against rules with one threshold changed: promtool must notice.
    changed = RULES.read_text().replace("> 25 * 60", "> 40 * 60")
    assert changed != RULES.read_text()
    (tmp_path / RULES.name).write_text(changed)
    (tmp_path / RULES_TEST.name).write_text(RULES_TEST.read_text())
    done = run(tool("promtool"), "test", "rules", str(tmp_path / RULES_TEST.name))
    assert done.returncode != 0
    assert "ForgeTmuxJanitorStale" in done.stdout + done.stderr


def test_every_summary_names_the_host_and_a_command() -> None:
    text = RULES.read_text()
    summaries = re.findall(r"summary: >-\n((?:\s{12}.*\n?)+)", text)
    assert len(summaries) == len(ALERTS)
    for summary in summaries:
        assert "{{ $labels.instance }}" in summary
        assert "`forge-tmux " in summary


# --- Alertmanager -------------------------------------------------------------------------------


def test_amtool_checks_the_telegram_receiver() -> None:
    done = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert "1 receivers" in done.stdout


def test_the_message_template_renders() -> None:
    done = run(
        tool("amtool"),
        "template",
        "render",
        f"--template.glob={ALERTMANAGER.parent / 'forge-tmux.tmpl'}",
        '--template.text={{ template "forge_tmux.telegram" . }}',
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "host(s)" in done.stdout


def test_a_fleet_wide_event_is_one_message() -> None:
    # Grouped by alert name only: a reboot of every host is one group, so one message.
    text = ALERTMANAGER.read_text()
    assert re.search(r"^  group_by: \[alertname\]$", text, re.M)
    assert "telegram_configs:" in text


# --- Grafana ------------------------------------------------------------------------------------

# PromQL words that are not metric names.
PROMQL_WORDS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "time",
        "increase",
        "rate",
        "irate",
        "delta",
        "idelta",
        "deriv",
        "changes",
        "resets",
        "abs",
        "ceil",
        "floor",
        "round",
        "clamp",
        "clamp_min",
        "clamp_max",
        "label_replace",
        "label_join",
        "label_values",
        "vector",
        "scalar",
        "absent",
        "absent_over_time",
        "max_over_time",
        "min_over_time",
        "avg_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "timestamp",
        "sort",
        "sort_desc",
        "histogram_quantile",
    ]
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana's label_values()) reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"label_values\(([^,)]+),[^)]*\)", r"\1", text)  # label_values(metric, label)
    words = set(re.findall(r"(?<![\w$.])[a-zA-Z_:][\w:]*", text))
    return {w for w in words if w not in PROMQL_WORDS}


def dashboard_queries() -> Iterator[str]:
    data = json.loads(DASHBOARD.read_text())
    for panel in data["panels"]:
        for target in panel["targets"]:
            yield target["expr"]
    for variable in data["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["definition"]


def exported(cli: Callable[..., CliResult]) -> set[str]:
    """The sample names `health --format prometheus` really writes (with --all-users too)."""
    names: set[str] = set()
    for extra in ((), ("--all-users",)):
        result = cli("health", "--format", "prometheus", *extra)
        assert result.code == 0, result.err
        for family in text_string_to_metric_families(result.out):
            names |= {s.name for s in family.samples}
    return names


def test_metric_names_are_found_in_queries() -> None:
    assert metric_names(
        'sum by (instance) (increase(forge_tmux_x_total{instance=~"$instance"}[1h])) '
        "- on (instance) time() > 5 and made_up_metric"
    ) == {"forge_tmux_x_total", "made_up_metric"}
    assert metric_names("label_values(forge_tmux_build_info, instance)") == {
        "forge_tmux_build_info"
    }


@needs_tmux
def test_dashboard_and_rules_name_only_exported_metrics(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    available = exported(cli)
    queries = list(dashboard_queries())
    assert len(queries) >= 8
    used: set[str] = set()
    for expr in queries:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= available, f"{expr!r} names {names - available}"
        used |= names
    # The panels the issue asks for: sockets by state, sessions, last sweep age, removals.
    assert {
        "forge_tmux_sockets",
        "forge_tmux_sessions",
        "forge_tmux_sweep_last_success_timestamp_seconds",
        "forge_tmux_sweep_removed_total",
    } <= used
    rules = re.findall(r"expr: (.*)", RULES.read_text())
    assert len(rules) == len(ALERTS)
    for expr in rules:
        assert metric_names(expr) <= available, expr
