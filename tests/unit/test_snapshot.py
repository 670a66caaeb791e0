"""The snapshot's pure parts: what a save keeps, the hook it installs, the boot summary's lines."""

from __future__ import annotations

import json
import os

import pytest

from forge_tmux import snapshot, systemd_units
from forge_tmux.config import parse
from forge_tmux.errors import ConfigError
from forge_tmux.snapshot import Entry, merge


def entry(session: str, socket: str | None = None) -> Entry:
    return Entry(session, session, socket or f"spawn-{session}", ("sleep", "1"), "/")


def test_merge_keeps_crashed_drops_ended_and_adds_live() -> None:
    old = [entry("crashed"), entry("ended"), entry("live")]
    now = [entry("live"), entry("new")]
    # spawn-ended answered without its session (it exited); spawn-crashed did not answer.
    kept = merge(old, now, answered={"spawn-live", "spawn-new", "spawn-ended"})
    assert [e.session for e in kept] == ["crashed", "live", "new"]


def test_hook_command_refuses_paths_a_shell_or_tmux_would_read() -> None:
    good = snapshot.hook_command("/tmp/tmux-1/spawn-a", "/usr/bin/python3", "/home/u/.state")
    assert good is not None and "session-closed --socket-path /tmp/tmux-1/spawn-a" in good
    assert "/usr/bin/python3 -I -m forge_tmux" in good  # the cwd never shadows the package
    for bad in ("/tmp/a b", "/tmp/$(x)", "/tmp/#{x}", "/tmp/a'b", "/tmp/a;b"):
        assert snapshot.hook_command(bad, "/usr/bin/python3", "/s") is None
        assert snapshot.hook_command("/tmp/s", bad, "/s") is None
        assert snapshot.hook_command("/tmp/s", "/usr/bin/python3", bad) is None


def test_malformed_snapshot_files_are_empty_not_errors(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "sessions.json")
    for text in ("{", "[]", '{"version": 1, "sessions": [{"name": 1}]}', '{"version": 9}'):
        with open(path, "w") as fh:
            fh.write(text)
        assert snapshot.load(path).entries == []


def test_boot_summary_lists_this_boots_restore(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORGE_TMUX_STATE_DIR", str(tmp_path))
    report = {
        "at": 2000.0,
        "restored": ["a"],
        "already_running": ["b"],
        "failed": [{"name": "c", "reason": "working directory /x does not exist"}],
    }
    with open(os.path.join(str(tmp_path), snapshot.LAST_RESTORE), "w") as fh:
        json.dump(report, fh)
    assert snapshot.last_restore(since=1000.0) == [
        "restore: 1 restored, 1 already running, 1 failed",
        "  restored a",
        "  already running b",
        "  FAILED c: working directory /x does not exist",
    ]
    assert snapshot.last_restore(since=3000.0) == []  # an earlier boot's restore


@pytest.mark.parametrize("mode", ["user", "system"])
def test_the_save_unit_saves_on_stop_and_in_system_mode_stops_before_the_user_manager(
    mode: str,
) -> None:
    opts = systemd_units.options(
        parse({}),
        systemd_units.Mode(mode),
        exec_path="/usr/bin/forge-tmux",
        user="root" if mode == "system" else None,
    )
    (unit,) = [f for f in systemd_units.render(opts) if f.name == systemd_units.SAVE_SERVICE]
    assert "ExecStop=/usr/bin/forge-tmux save --shutdown" in unit.text
    assert "RemainAfterExit=yes" in unit.text
    assert ("After=user@0.service" in unit.text) == (mode == "system")


def test_forgetting_and_closing_never_create_state_files(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = os.path.join(str(tmp_path), "state")
    monkeypatch.setenv("FORGE_TMUX_STATE_DIR", state)
    assert snapshot.forget("spawn-x", "x") is False
    assert snapshot.session_closed(os.path.join(str(tmp_path), "no-socket")) == 0
    assert not os.path.exists(state)


def test_boot_restore_key() -> None:
    assert parse({"boot": {"restore": True}}).boot.restore is True
    assert parse({}).boot.restore is False
    with pytest.raises(ConfigError, match=r"'boot\.restore' must be true or false"):
        parse({"boot": {"restore": 1}})
