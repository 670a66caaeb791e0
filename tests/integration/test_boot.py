"""`forge-tmux boot`: sweep, post-boot sessions' status, the health row, the summary to Telegram.

Real tmux servers in the private TMUX_TMPDIR; the real python-telegram-bot against the fake Bot
API on 127.0.0.1.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from forge_tmux_testing.cli import CliResult
from forge_tmux_testing.fake_bot_api import FakeBotAPI
from forge_tmux_testing.telegram import (
    BASE_CONFIG,
    assert_no_token,
    outbox_files,
    unreachable,
    unsafe_token_file,
    write_config,
)
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux

pytestmark = needs_tmux


def test_boot_summary_has_the_sweep_and_the_health_row(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    tg_env.start("homebase")
    tg_env.stale("spawn-old")
    result = cli("boot", "--json")
    assert result.code == 0, result.err
    (text,) = fake.messages()
    lines = text.splitlines()
    assert lines[0].endswith(" booted")
    assert lines[0].startswith("<b>")
    assert "sweep: removed 1 stale socket (1 live)" in lines
    assert f"removed {tg_env.path('spawn-old')}" in lines
    assert "tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown" in lines
    data = result.json()
    assert data["ok"] is True
    assert data["health"] == "tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown"
    assert data["notify"]["delivered"] == 1
    assert_no_token(result)


def test_boot_reports_post_boot_sessions(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    write_config(
        tg_env,
        BASE_CONFIG + '[[boot.sessions]]\nname = "agent"\ncommand = ["sleep", "1000"]\n'
        '[[boot.sessions]]\nname = "web<1>"\ncommand = ["sleep", "1000"]\n',
    )
    tg_env.tmux("-L", "spawn-agent", "new-session", "-d", "-s", "agent", "sleep 1000", check=True)
    result = cli("boot")
    assert result.code == 0, result.err
    (text,) = fake.messages()
    assert "post-boot sessions: 1 of 2 running" in text
    assert "agent on spawn-agent: running" in text
    assert "web-1--" in text and "NOT running" in text
    assert "<1>" not in text  # escaped; the safe name has no brackets anyway


def test_boot_with_telegram_unreachable_exits_0_quickly_and_next_run_delivers(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    down = unreachable(tg_env)
    started = time.monotonic()
    result = cli("boot", env=down)
    took = time.monotonic() - started
    assert result.code == 0
    assert took < 10, took
    assert len(outbox_files(tg_env)) == 1
    later = cli("notify", "after boot")
    assert later.code == 0, later.err
    messages = fake.messages()
    assert len(messages) == 2
    assert "booted" in messages[0]
    assert messages[1] == "after boot"
    assert cli("notify").code == 0
    assert len(fake.messages()) == 2


def test_boot_exit_code_is_the_sweeps(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    unsafe = os.path.join(tg_env.root, "unsafe")
    os.mkdir(unsafe, 0o777)
    os.chmod(unsafe, 0o777)
    result = cli("boot", "--dir", unsafe)
    assert result.code == 1
    (text,) = fake.messages()
    assert "1 directory refused" in text


def test_boot_without_telegram_still_sweeps(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    tmux_env.stale("spawn-old")
    result = cli("boot")
    assert result.code == 0, result.err
    assert "sweep: removed 1 stale socket" in result.out
    assert "tmux sockets: 0 live, 0 dead, 0 hung, 0 unknown" in result.out
    # No one to tell: no outbox, no health memory; only the janitor's own record (its metrics).
    state_files = set(os.listdir(tmux_env.env["FORGE_TMUX_STATE_DIR"]))
    assert state_files <= {"janitor.state", "janitor.state.lock"}


def test_boot_with_an_unsafe_token_file_sweeps_and_logs(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    unsafe_token_file(tmux_env)
    tmux_env.stale("spawn-old")
    result = cli("boot")
    assert result.code == 0
    assert "group or other" in result.err
    assert not os.path.exists(tmux_env.path("spawn-old"))
    assert_no_token(result)
