"""Pure parts of health: renderers (orphan proof: test_orphans_unit.py; Nagios: test_nagios.py)."""

from __future__ import annotations

import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from forge_tmux import health
from forge_tmux.health import DirCheck, DirHealth, Health, HealthResult, SocketHealth
from forge_tmux.orphans import Orphan


def sample(*states: Health, orphans: int = 0, dirs: DirCheck = DirCheck.CHECKED) -> HealthResult:
    sockets = tuple(
        SocketHealth(f"/t/{i}", s, 2 if s is Health.LIVE else None, "", None, 0)
        for i, s in enumerate(states)
    )
    found = tuple(Orphan(9, 0, f"/t/o{i}", 1, "socket file deleted") for i in range(orphans))
    return HealthResult((DirHealth("/t", dirs),), sockets, found, timestamp=1.0, duration_s=0.5)


def test_row() -> None:
    three = sample(Health.LIVE, Health.LIVE, Health.LIVE, Health.DEAD)
    assert health.render_row(three) == "tmux sockets: 3 live, 1 dead, 0 hung, 0 unknown"
    assert health.render_row(sample(Health.LIVE, orphans=1)) == (
        "tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown, 1 orphaned"
    )


def test_prometheus_and_json_shapes() -> None:
    result = sample(Health.LIVE, Health.DEAD, Health.HUNG, orphans=2)
    families = {f.name: f for f in text_string_to_metric_families(health.render_prometheus(result))}
    assert {s.labels["state"]: s.value for s in families["forge_tmux_sockets"].samples} == {
        "live": 1,
        "dead": 1,
        "hung": 1,
        "unknown": 0,
    }
    assert families["forge_tmux_orphaned_servers"].samples[0].value == 2
    data = health.to_json(result)
    assert (data["live"], data["dead"], data["hung"], data["unknown"]) == (1, 1, 1, 0)
    assert data["sockets"] == [
        {"path": "/t/0", "state": "live", "sessions": 2, "reason": "", "pid": None, "uid": 0},
        {"path": "/t/1", "state": "dead", "sessions": None, "reason": "", "pid": None, "uid": 0},
        {"path": "/t/2", "state": "hung", "sessions": None, "reason": "", "pid": None, "uid": 0},
    ]


def test_psutil_stays_off_the_sweep_path_and_out_of_health_imports() -> None:
    code = (
        "import sys, forge_tmux.cli.common, forge_tmux.config, forge_tmux.probe, "
        "forge_tmux.sweep, forge_tmux.health, forge_tmux.healthstate, forge_tmux.orphans, "
        "forge_tmux.cli._health; print('psutil' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
