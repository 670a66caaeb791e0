"""The shutdown save on a real `systemd --user` manager (forge_tmux_testing.systemd_user): a session
spawned from a service gets a scope ordered before forge-tmux-save.service, so stopping the manager
(a shutdown) runs the save while the session still runs; the next boot restores it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from forge_tmux_testing.processes import wait_for
from forge_tmux_testing.systemd_user import UserManager, missing_requirements

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(missing_requirements() is not None, reason=str(missing_requirements())),
]

SAVE = "forge-tmux-save.service"


def test_shutdown_saves_before_the_sessions_stop_and_boot_restores(
    manager: UserManager, venv: Path
) -> None:
    forge_tmux = str(venv / "bin" / "forge-tmux")
    install = manager.run([forge_tmux, "units", "install", "--json"], timeout=240)
    assert install.returncode == 0, (install.stdout, install.stderr)
    assert manager.show(SAVE, "ActiveState")["ActiveState"] == "active"
    # Spawned from a service of the manager, as the bot does: the server gets a scope of its own.
    spawned = manager.run(
        [
            "systemd-run",
            "--user",
            "--wait",
            "--collect",
            "--quiet",
            forge_tmux,
            "spawn",
            "keeper",
            "--",
            "sleep",
            "100000",
        ]
    )
    assert spawned.returncode == 0, (spawned.stdout, spawned.stderr)
    tmux = ["tmux", "-L", "spawn-keeper"]
    pid = manager.run([*tmux, "display-message", "-p", "#{pid}"]).stdout.strip()
    with open(f"/proc/{pid}/cgroup") as fh:
        scope = next(p for p in fh.read().split() if p.endswith(".scope")).rsplit("/", 1)[1]
    assert SAVE in manager.show(scope, "Before")["Before"].split()
    state = Path(manager.home, ".local/state/forge-tmux/sessions.json")
    # The install's first sweep saved before the spawn: only the shutdown save can add keeper.
    assert not state.exists() or json.loads(state.read_text())["sessions"] == []

    manager.stop()  # a shutdown: every unit stops, in reverse dependency order
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=30)
    snapshot = json.loads(state.read_text())
    assert snapshot["shutdown"] is True
    assert [e["session"] for e in snapshot["sessions"]] == ["keeper"]
    # Saved while it ran: an entry of a live session carries the save's own time.
    assert snapshot["sessions"][0]["saved_at"] == snapshot["saved_at"]

    manager.start()  # the next boot
    restored = manager.run([forge_tmux, "post-boot", "--restore", "--json"], timeout=120)
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["restored"] == ["keeper"]
    assert manager.run([*tmux, "has-session", "-t", "=keeper"]).returncode == 0
    manager.run([*tmux, "kill-server"])
    uninstall = manager.run([forge_tmux, "units", "uninstall", "--json"], timeout=240)
    assert uninstall.returncode == 0, uninstall.stderr
