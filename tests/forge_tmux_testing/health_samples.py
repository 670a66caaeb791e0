"""Health results made by hand: what the renderers (JSON, Prometheus, Nagios, the row) get."""

from __future__ import annotations

from forge_tmux.health import DirCheck, DirHealth, Health, HealthResult, SocketHealth
from forge_tmux.orphans import Orphan


def sample(*states: Health, orphans: int = 0, dirs: DirCheck = DirCheck.CHECKED) -> HealthResult:
    sockets = tuple(
        SocketHealth(f"/t/{i}", s, 2 if s is Health.LIVE else None, "", None, 0)
        for i, s in enumerate(states)
    )
    found = tuple(Orphan(9, 0, f"/t/o{i}", 1, "socket file deleted") for i in range(orphans))
    return HealthResult((DirHealth("/t", dirs),), sockets, found, timestamp=1.0, duration_s=0.5)
