"""`forge-tmux doctor`: one line per check, --json, exit 1 on any FAIL, and it changes nothing.

Against a running manager it is exercised in test_systemd_e2e.py; here root has no user manager,
which is itself a case doctor must report (warn, not fail)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forge_tmux.config import Config, TelegramConfig
from forge_tmux.doctor import Level, check_last_sweep, check_telegram, check_units
from forge_tmux.systemd_units import (
    BOOT_SERVICE,
    BOT_SERVICE,
    POST_BOOT_SERVICE,
    SWEEP_SERVICE,
    SWEEP_TIMER,
    Mode,
    Status,
    UnitStatus,
)
from forge_tmux_testing.cli import Cli, CliResult
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux


def levels(result: CliResult) -> dict[str, str]:
    return {c["name"]: c["level"] for c in result.json()["checks"]}


def tree(root: str) -> dict[str, tuple[int, int]]:
    found = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(os.path.join(here, name))
            found[os.path.join(here, name)] = (st.st_ino, st.st_mode)
    return found


@needs_tmux
def test_defaults_without_systemd_fail_only_on_the_schedule(cli: Cli, tmux_env: TmuxEnv) -> None:
    result = cli("doctor", "--json")
    assert result.code == 1, result.out + result.err
    checks = levels(result)
    assert checks["tmux"] == "ok"
    assert checks["config"] == "ok"
    assert checks[f"socket dir {tmux_env.sockdir}"] == "ok"
    assert checks["units"] == "fail"  # no running manager here: the sweep has no schedule
    assert checks["telegram"] == "ok"
    assert [name for name, level in checks.items() if level == "fail"] == ["units"]
    human = cli("doctor")
    assert human.code == 1
    for line in human.out.splitlines():
        assert line.split()[0] in ("ok", "warn", "FAIL"), line


@needs_tmux
def test_doctor_changes_nothing(cli: Cli, tmux_env: TmuxEnv) -> None:
    stale = tmux_env.fake_stale("left-over")
    before = tree(tmux_env.root)
    assert cli("doctor", "--json").code == 1  # no systemd manager here (see above)
    assert cli("doctor").code == 1
    assert tree(tmux_env.root) == before
    assert os.path.exists(stale)  # doctor reports; it never sweeps


@needs_tmux
def test_bad_config_is_a_failed_check_not_a_crash(cli: Cli, tmux_env: TmuxEnv) -> None:
    config = Path(tmux_env.root, "bad.toml")
    config.write_text("[sweep]\ntimeout = -1\n")
    result = cli("--config", str(config), "doctor", "--json")
    assert result.code == 1
    checks = levels(result)
    assert checks["config"] == "fail"
    assert checks["tmux"] == "ok"  # the other checks still ran
    assert "Traceback" not in result.err


@needs_tmux
def test_unsafe_socket_dir_fails(cli: Cli, tmux_env: TmuxEnv) -> None:
    os.chmod(tmux_env.sockdir, 0o755)
    result = cli("doctor")
    assert result.code == 1
    assert f"FAIL socket dir {tmux_env.sockdir}: unsafe" in result.out


@needs_tmux
def test_telegram_settings(cli: Cli, tmux_env: TmuxEnv) -> None:
    token = Path(tmux_env.root, "token")
    token.write_text("123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n")
    config = Path(tmux_env.root, "config.toml")
    config.write_text(f'[telegram]\ntoken_file = "{token}"\nchat_id = 42\n')
    os.chmod(token, 0o644)
    loose = cli("--config", str(config), "doctor")
    assert loose.code == 1
    assert "FAIL telegram:" in loose.out and "group or other" in loose.out
    os.chmod(token, 0o600)
    good = cli("--config", str(config), "doctor")
    assert good.code == 1, good.out  # only for the missing systemd manager here
    assert "FAIL telegram" not in good.out
    assert "ok   telegram: configured" in good.out
    assert "ABCDEFGHIJ" not in good.out + good.err  # the token itself never shows
    half = cli("doctor", env={**tmux_env.env, "FORGE_TMUX_TELEGRAM_CHAT_ID": "42"})
    assert "warn telegram: half configured: a token is missing" in half.out


def unit(
    name: str, installed: bool = True, enabled: str = "enabled", active: str = ""
) -> UnitStatus:
    active = active or ("active" if name == SWEEP_TIMER else "inactive")
    return UnitStatus(name, f"/u/{name}", installed, installed, enabled, active)


def status(*units: UnitStatus, last: dict[str, str] | None = None) -> Status:
    return Status(Mode.USER, "/u", "running", units, "2026-01-01 00:10:00+00:00", last or {}, True)


def test_check_units_reports_each_unit() -> None:
    ran = {"Result": "success", "ExecMainStatus": "0", "ExecMainExitTimestamp": "Mon"}
    good = status(
        unit(SWEEP_SERVICE),
        unit(SWEEP_TIMER),
        unit(BOOT_SERVICE),
        unit(BOT_SERVICE, installed=False, enabled="not-found"),
        unit(POST_BOOT_SERVICE, installed=False, enabled="not-found"),
        last=ran,
    )
    checks = {c.name: c for c in check_units(good)}
    assert all(c.level is Level.OK for c in checks.values()), checks
    assert BOT_SERVICE not in checks and POST_BOOT_SERVICE not in checks
    assert checks["timer next run"].detail == "2026-01-01 00:10:00+00:00"

    bad = status(
        unit(SWEEP_SERVICE, enabled="disabled"),
        unit(SWEEP_TIMER, active="inactive"),
        unit(BOOT_SERVICE, installed=False, enabled="not-found"),
    )
    checks = {c.name: c for c in check_units(bad)}
    assert checks[SWEEP_SERVICE].level is Level.FAIL
    assert checks[BOOT_SERVICE].level is Level.FAIL
    assert "units install" in checks[BOOT_SERVICE].detail
    assert checks["timer next run"].level is Level.FAIL


def test_check_last_sweep() -> None:
    assert check_last_sweep({}).level is Level.WARN
    ok = {"Result": "success", "ExecMainStatus": "0", "ExecMainExitTimestamp": "Mon 2026"}
    assert check_last_sweep(ok).level is Level.OK
    failed = {**ok, "Result": "exit-code", "ExecMainStatus": "1"}
    result = check_last_sweep(failed)
    assert result.level is Level.FAIL
    assert "exit-code, exit status 1" in result.detail


def test_telegram_follows_the_notifiers_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """doctor reads the token's origin from `notify.token_source`, the rule `resolve` sends
    with: a `~` in token_file is the home directory, and a root-only token file that a system
    unit handed over as the credential is not a failure (both were FAIL before)."""
    from forge_tmux.config import parse  # noqa: PLC0415
    from forge_tmux.doctor import check_telegram  # noqa: PLC0415

    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text("123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n")
    (home / "token").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))  # what expanduser reads
    cfg = parse({"telegram": {"token_file": "~/token", "chat_id": 42}})
    tilde = check_telegram(cfg, {})
    assert (tilde.level, tilde.detail) == (
        Level.OK,
        f"configured (token from {home}/token, chat 42)",
    )

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "telegram-token").write_text("123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n")
    unreadable = parse({"telegram": {"token_file": str(tmp_path / "root-only"), "chat_id": 42}})
    handed = check_telegram(unreadable, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert handed.level is Level.OK, handed.detail
    assert "systemd credential telegram-token" in handed.detail
    alone = check_telegram(unreadable, {})
    assert alone.level is Level.FAIL  # no credential to fall back on: the file's problem shows


def test_telegram_fails_where_the_notifier_would(tmp_path: Path) -> None:
    """doctor asks the notifier's own resolution: a FIFO or an empty token file is refused by
    `notify`, so doctor must not call it configured."""
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    for path in (empty, fifo):
        cfg = Config()._replace(
            telegram=TelegramConfig()._replace(token_file=str(path), chat_id="1")
        )
        assert check_telegram(cfg, {}).level is Level.FAIL, path
