"""Pure parts of health: renderers (orphan proof: test_orphans_unit.py; Nagios: test_nagios.py)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from forge_tmux import health
from forge_tmux.health import Health
from forge_tmux_testing.health_samples import sample


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
