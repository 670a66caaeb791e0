"""The fleet's units: the opt-in health-metrics timer, OnFailure= on the sweep and the boot hook,
and `units report-failure` (told to Telegram once per run of failures, through the fake Bot API)."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from forge_tmux.systemd_units import (
    BOOT_SERVICE,
    FAILURE_SERVICE,
    HEALTH_SERVICE,
    HEALTH_TIMER,
    SWEEP_SERVICE,
    Identity,
    Mode,
    RenderOptions,
    render,
)
from forge_tmux_testing.cli import Cli
from forge_tmux_testing.fake_bot_api import FakeBotAPI
from forge_tmux_testing.telegram import CHAT  # noqa: F401 - the plugin below provides its fixtures
from forge_tmux_testing.tmux_world import TmuxEnv

EXE = os.path.join(os.path.dirname(sys.executable), "forge-tmux")
ME = Identity("alice", "staff", 1234, "/home/alice")


def files(mode: Mode, **kw: Any) -> dict[str, str]:
    opts = RenderOptions(mode=mode, exec_start=(EXE,), identity=ME, **kw)
    return {f.name: f.text for f in render(opts)}


def value(text: str, key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in text.splitlines()
        if not line.startswith("#") and line.split("=", 1)[0] == key
    ]


@pytest.mark.parametrize("mode", list(Mode))
def test_health_timer_is_opt_in_and_writes_the_textfile(mode: Mode) -> None:
    assert HEALTH_TIMER not in files(mode)
    rendered = files(mode, with_health_metrics=True, textfile_dir="/srv/tf", metrics_interval=30)
    service, timer = rendered[HEALTH_SERVICE], rendered[HEALTH_TIMER]
    assert value(service, "ExecStart") == [
        f"{EXE} health --format prometheus --output /srv/tf/forge-tmux-1234.prom"
    ]
    # Writes only the collector directory; never the sockets.
    assert value(service, "ReadWritePaths") == ["-/srv/tf"]
    assert value(service, "Type") == ["oneshot"]
    assert value(timer, "OnUnitActiveSec") == ["30s"]
    assert value(timer, "Unit") == [HEALTH_SERVICE]
    assert value(timer, "WantedBy") == ["timers.target"]
    assert "[Install]" not in service  # started by the timer only


@pytest.mark.parametrize("mode", list(Mode))
def test_sweep_and_boot_tell_their_failure(mode: Mode) -> None:
    rendered = files(mode)
    for unit in (SWEEP_SERVICE, BOOT_SERVICE):
        assert value(rendered[unit], "OnFailure") == ["forge-tmux-failure@%n.service"]
    failure = rendered[FAILURE_SERVICE]
    assert value(failure, "ExecStart") == [f"{EXE} units report-failure --mode {mode.value} %i"]
    assert "[Install]" not in failure  # a template started by OnFailure=, never enabled
    # It talks to Telegram: network allowed, nothing else relaxed.
    assert "AF_INET" in value(failure, "RestrictAddressFamilies")[0]


def write_record(env: TmuxEnv, cli: Cli, *, ok: bool) -> None:
    if ok:
        assert cli("sweep").code == 0
        return
    unsafe = os.path.join(env.root, "unsafe")
    os.makedirs(unsafe, exist_ok=True)
    os.chmod(unsafe, 0o777)
    assert cli("sweep", "--dir", unsafe).code == 1


def test_failure_is_told_once_until_a_sweep_succeeds(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Cli
) -> None:
    env = dict(
        tg_env.env,
        MONITOR_SERVICE_RESULT="exit-code",
        MONITOR_EXIT_CODE="exited",
        MONITOR_EXIT_STATUS="1",
    )
    write_record(tg_env, cli, ok=False)
    first = cli("units", "report-failure", SWEEP_SERVICE, env=env)
    assert first.code == 0, first.err
    assert "told Telegram" in first.out
    (text,) = fake.messages()
    assert "janitor failed" in text
    assert f"{SWEEP_SERVICE} failed (result exit-code, exited 1)" in text
    assert f"systemctl --user status {SWEEP_SERVICE}" in text
    # The timer fails again ten minutes later: no second message.
    write_record(tg_env, cli, ok=False)
    again = cli("units", "report-failure", SWEEP_SERVICE, env=env)
    assert again.code == 0
    assert "not told" in again.out
    assert len(fake.messages()) == 1
    # A success re-arms it: the next run of failures is told again.
    write_record(tg_env, cli, ok=True)
    write_record(tg_env, cli, ok=False)
    assert cli("units", "report-failure", BOOT_SERVICE, env=env).code == 0
    assert len(fake.messages()) == 2


def test_failure_without_telegram_only_logs(tmux_env: TmuxEnv, cli: Cli) -> None:
    result = cli("units", "report-failure", SWEEP_SERVICE)
    assert result.code == 0
    assert f"{SWEEP_SERVICE} failed" in result.err
    assert "not told" in result.out


def test_failure_of_a_bad_unit_name_is_exit_2(tmux_env: TmuxEnv, cli: Cli) -> None:
    result = cli("units", "report-failure", "a b; rm -rf /")
    assert result.code == 2
    assert "not a unit name" in result.err
    assert "Traceback" not in result.err
