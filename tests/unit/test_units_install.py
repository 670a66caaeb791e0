"""`units install` / `uninstall` bookkeeping with systemctl replaced by a recorder: the manifest,
the operator's own files left alone, a changed file kept, and the calls made, in order.
The same paths run against a real user manager in test_systemd_e2e.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from forge_tmux import systemd, systemd_units
from forge_tmux.errors import UsageError
from forge_tmux.systemd_units import (
    BOOT_SERVICE,
    BOT_SERVICE,
    FAILURE_SERVICE,
    HEALTH_SERVICE,
    HEALTH_TIMER,
    POST_BOOT_SERVICE,
    SAVE_SERVICE,
    SWEEP_SERVICE,
    SWEEP_TIMER,
    Identity,
    Mode,
    RenderOptions,
)

EXE = os.path.join(os.path.dirname(sys.executable), "forge-tmux")


class FakeSystemctl:
    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail

    def __call__(
        self, args: Sequence[str], *, user: bool, timeout: float = 30
    ) -> systemd.SystemdResult:
        self.calls.append(tuple(args))
        code = 1 if self.fail and args[0] == self.fail else 0
        return systemd.SystemdResult(("systemctl", *args), code, "", "boom" if code else "")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("FORGE_TMUX_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(systemd, "manager_state", lambda *, user: "running")
    monkeypatch.setattr(systemd, "show", lambda unit, props, *, user: {})
    monkeypatch.setattr(systemd, "lingering", lambda name: True)
    monkeypatch.setattr(systemd_units, "TMPFILES_DIR", str(tmp_path / "tmpfiles.d"))
    return tmp_path


@pytest.fixture
def fake(home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystemctl:
    recorder = FakeSystemctl()
    monkeypatch.setattr(systemd, "systemctl", recorder)
    return recorder


def operator_unit(home: Path, name: str) -> Path:
    """A unit the operator wrote before forge-tmux was installed."""
    path = home / "config" / "systemd" / "user" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[Service]\nExecStart=/bin/true\n")
    return path


def opts(**kw: Any) -> RenderOptions:
    me = Identity.of(os.getuid())
    return RenderOptions(Mode.USER, (EXE,), me, **kw)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_install_writes_enables_starts_and_records(home: Path, fake: FakeSystemctl) -> None:
    (home / "tmpfiles.d").mkdir()
    outcome = systemd_units.install(opts(with_bot=False))
    assert outcome.ok, outcome
    unit_dir = home / "config" / "systemd" / "user"
    assert sorted(os.listdir(unit_dir)) == sorted(
        [SWEEP_SERVICE, SWEEP_TIMER, BOOT_SERVICE, FAILURE_SERVICE, SAVE_SERVICE]
    )
    assert (home / "tmpfiles.d" / "forge-tmux.conf").exists()
    assert fake.calls == [
        ("daemon-reload",),
        ("enable", SWEEP_SERVICE, SWEEP_TIMER, BOOT_SERVICE, SAVE_SERVICE),
        ("start", SWEEP_TIMER, SAVE_SERVICE),
        ("start", SWEEP_SERVICE),
    ]
    manifest = systemd_units.load_manifest(Mode.USER)
    assert manifest is not None
    assert set(manifest.files) == {str(unit_dir / n) for n in os.listdir(unit_dir)} | {
        str(home / "tmpfiles.d" / "forge-tmux.conf")
    }
    # Idempotent: a second install changes nothing on disk.
    before = files_under(home)
    assert systemd_units.install(opts(with_bot=False)).ok
    assert files_under(home) == before


def test_uninstall_removes_exactly_what_was_installed(home: Path, fake: FakeSystemctl) -> None:
    mine = operator_unit(home, "my-own.service")
    unit_dir = mine.parent
    wants = unit_dir / "default.target.wants"
    wants.mkdir()
    (wants / mine.name).symlink_to(mine)
    before = files_under(home)
    assert systemd_units.install(opts(with_bot=True)).ok
    # A .wants link that `systemctl enable` would have made (the fake makes none).
    (wants / SWEEP_SERVICE).symlink_to(unit_dir / SWEEP_SERVICE)
    outcome = systemd_units.uninstall(Mode.USER)
    assert outcome.ok, outcome
    disable = ("disable", "--now", SWEEP_SERVICE, SWEEP_TIMER, BOOT_SERVICE, SAVE_SERVICE)
    assert (*disable, BOT_SERVICE) in fake.calls
    assert files_under(home) == before  # the operator's unit and link are still there
    again = systemd_units.uninstall(Mode.USER)
    assert again.ok and again.notes == ("nothing installed (no manifest)",)


def test_changed_file_is_kept(home: Path, fake: FakeSystemctl) -> None:
    assert systemd_units.install(opts()).ok
    edited = home / "config" / "systemd" / "user" / SWEEP_TIMER
    edited.write_text(edited.read_text() + "# local change\n")
    outcome = systemd_units.uninstall(Mode.USER)
    assert not outcome.ok
    assert outcome.kept == (str(edited),)
    assert edited.exists()
    assert not (home / "config" / "systemd" / "user" / SWEEP_SERVICE).exists()


def test_post_boot_of_the_operator_is_never_overwritten(home: Path, fake: FakeSystemctl) -> None:
    theirs = operator_unit(home, POST_BOOT_SERVICE)
    outcome = systemd_units.install(opts(with_post_boot=True))
    assert outcome.ok
    assert outcome.kept == (str(theirs),)
    assert theirs.read_text() == "[Service]\nExecStart=/bin/true\n"
    assert POST_BOOT_SERVICE not in fake.calls[1]  # not ours to enable
    systemd_units.uninstall(Mode.USER)
    assert theirs.exists()


def test_post_boot_installed_when_absent(home: Path, fake: FakeSystemctl) -> None:
    outcome = systemd_units.install(opts(with_post_boot=True))
    assert outcome.ok
    assert POST_BOOT_SERVICE in fake.calls[1]
    # Ours now: a re-install may rewrite it, unless the operator has changed it since.
    assert systemd_units.install(opts(with_post_boot=True)).kept == ()
    ours = home / "config" / "systemd" / "user" / POST_BOOT_SERVICE
    ours.write_text("[Service]\nExecStart=/bin/true\n")
    assert systemd_units.install(opts(with_post_boot=True)).kept == (str(ours),)
    assert ours.read_text() == "[Service]\nExecStart=/bin/true\n"
    manifest = systemd_units.load_manifest(Mode.USER)
    assert manifest is not None
    assert str(ours) not in manifest.files and POST_BOOT_SERVICE not in manifest.enabled
    assert systemd_units.uninstall(Mode.USER).ok
    assert ours.exists()


def test_no_manager_installs_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd, "manager_state", lambda *, user: None)
    outcome = systemd_units.install(opts())
    assert not outcome.ok
    assert outcome.error is not None and "no running systemd user manager" in outcome.error
    assert files_under(home) == set()


def test_failed_step_is_reported(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd, "systemctl", FakeSystemctl(fail="enable"))
    outcome = systemd_units.install(opts())
    assert not outcome.ok
    assert (
        outcome.error is not None
        and "systemctl enable" in outcome.error
        and "boom" in outcome.error
    )
    # What was written is in the manifest, so uninstall can still take it away.
    monkeypatch.setattr(systemd, "systemctl", FakeSystemctl())
    assert systemd_units.uninstall(Mode.USER).ok


def test_missing_systemctl_is_its_own_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(systemd.SystemdNotFound):
        systemd.systemctl(["is-system-running"], user=True)


def test_systemctl_argv() -> None:
    assert systemd.systemctl_argv(["start", "x.service"], user=True) == (
        "systemctl",
        "--user",
        "--no-pager",
        "--no-ask-password",
        "start",
        "x.service",
    )
    assert "--user" not in systemd.systemctl_argv(["start"], user=False)


def test_unreadable_manifest_is_a_usage_error(home: Path) -> None:
    path = Path(systemd_units.manifest_path(Mode.USER))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(UsageError, match="unreadable manifest"):
        systemd_units.load_manifest(Mode.USER)


def test_health_metrics_timer_is_enabled_and_started_its_service_and_the_template_not(
    home: Path, fake: FakeSystemctl
) -> None:
    outcome = systemd_units.install(opts(with_bot=False, with_health_metrics=True))
    assert outcome.ok, outcome
    unit_dir = home / "config" / "systemd" / "user"
    assert {HEALTH_SERVICE, HEALTH_TIMER, FAILURE_SERVICE} <= set(os.listdir(unit_dir))
    assert fake.calls == [
        ("daemon-reload",),
        ("enable", SWEEP_SERVICE, SWEEP_TIMER, BOOT_SERVICE, SAVE_SERVICE, HEALTH_TIMER),
        ("start", SWEEP_TIMER, SAVE_SERVICE, HEALTH_TIMER),
        ("start", SWEEP_SERVICE),
    ]
    # Uninstall takes back every file, the template and the health units included.
    assert systemd_units.uninstall(Mode.USER).ok
    assert not unit_dir.exists() or os.listdir(unit_dir) == []
