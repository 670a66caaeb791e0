"""The jobs that notify: `boot` (sweep, post-boot sessions' status, the health row, the summary),
`spawn --notify` and `sweep --notify`. Real tmux servers in the private TMUX_TMPDIR; the real
python-telegram-bot against the fake Bot API on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


# --- boot -------------------------------------------------------------------------------------


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


# --- spawn --notify ---------------------------------------------------------------------------


def test_spawn_notify_after_cleanup(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    tg_env.stale("spawn-build")
    result = cli("spawn", "build", "--notify", "--", "sleep", "1000")
    assert result.code == 0, result.err
    (text,) = fake.messages()
    assert text.endswith("spawned build on spawn-build after cleaning 1 stale socket")
    assert text.startswith("<b>")
    assert_no_token(result)


def test_spawn_notify_failure_has_the_reason(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    tg_env.tmux("-L", "spawn-dup", "new-session", "-d", "-s", "dup", "sleep 1000", check=True)
    result = cli("spawn", "dup", "--notify", "--", "sleep", "1000")
    assert result.code == 1
    (text,) = fake.messages()
    assert "already running" in text


def test_spawn_notify_unreachable_exits_0_quickly(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    down = unreachable(tg_env)
    started = time.monotonic()
    result = cli("spawn", "quick", "--notify", "--", "sleep", "1000", env=down)
    took = time.monotonic() - started
    assert result.code == 0, result.err
    assert took < 10, took
    assert len(outbox_files(tg_env)) == 1
    assert cli("notify", "next").code == 0
    messages = fake.messages()
    assert messages[0].endswith("spawned quick on spawn-quick")
    assert messages[1] == "next"


def test_spawn_without_notify_sends_nothing(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    result = cli("spawn", "quiet", "--", "sleep", "1000")
    assert result.code == 0, result.err
    assert fake.calls == []


# --- sweep --notify ---------------------------------------------------------------------------


def test_sweep_notify_only_on_changes_once_per_event(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    assert cli("sweep", "--notify").code == 0
    assert fake.calls == []  # nothing happened: nothing said

    tg_env.stale("spawn-dead")
    assert cli("sweep", "--notify").code == 0
    (text,) = fake.messages()
    assert "sweep: removed 1 stale socket" in text
    assert "tmux sockets: " in text

    assert cli("sweep", "--notify").code == 0
    assert len(fake.messages()) == 1  # no news: no message

    hung = tg_env.start("spawn-hung")
    assert cli("sweep", "--notify").code == 0
    assert len(fake.messages()) == 1  # a new live server is no news
    os.kill(hung.pid, signal.SIGSTOP)
    try:
        assert cli("sweep", "--notify").code == 0
        messages = fake.messages()
        assert len(messages) == 2
        assert "hung" in messages[1]
        assert tg_env.path("spawn-hung") in messages[1]
        assert cli("sweep", "--notify").code == 0
        assert len(fake.messages()) == 2  # told once
    finally:
        os.kill(hung.pid, signal.SIGCONT)


def test_sweep_notify_policy_never_and_always(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    write_config(tg_env, '[telegram]\ntimeout = 5\n[sweep]\nnotify = "never"\n')
    tg_env.stale("spawn-a")
    assert cli("sweep", "--notify").code == 0
    assert fake.calls == []
    write_config(tg_env, '[telegram]\ntimeout = 5\n[sweep]\nnotify = "always"\n')
    assert cli("sweep", "--notify").code == 0
    assert cli("sweep", "--notify").code == 0
    assert len(fake.messages()) == 2
    assert "nothing stale" in fake.messages()[1]


def test_sweep_notify_flushes_the_outbox(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    # A short budget cuts the refused-connection back-off (0.5 + 1 + 2 s by default) short.
    write_config(tg_env, "[telegram]\ntimeout = 1\n")
    down = unreachable(tg_env)
    assert cli("notify", "kept", env=down).code == 1
    assert cli("sweep", "--notify").code == 0  # nothing new, but the outbox goes out
    assert fake.messages() == ["kept"]


def test_plain_sweep_stays_import_light(tmux_env: TmuxEnv) -> None:
    tmux_env.stale("spawn-x")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "forge_tmux", "sweep"],
        env=tmux_env.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    for heavy in ("telegram", "jinja2", "psutil", "json", "forge_tmux.notify", "httpx"):
        assert heavy not in imported, heavy


def test_sweep_notify_without_telegram_is_a_plain_sweep(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    tmux_env.stale("spawn-gone")
    result = cli("sweep", "--notify")
    assert result.code == 0
    assert "1 removed" in result.out
    assert "Telegram" not in result.err
    # No memory, no outbox: only the janitor's own record (its metrics).
    state_files = set(os.listdir(tmux_env.env["FORGE_TMUX_STATE_DIR"]))
    assert state_files <= {"janitor.state", "janitor.state.lock"}


def test_sweep_notify_with_an_unsafe_token_file_still_sweeps(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    """The timer runs `sweep --notify`: a Telegram mistake must never switch the janitor off."""
    unsafe_token_file(tmux_env)
    stale = tmux_env.stale("spawn-gone")
    result = cli("sweep", "--notify")
    assert result.code == 0, result.err
    assert not os.path.lexists(stale)
    assert "1 removed" in result.out
    assert "not notifying: telegram token file" in result.err
    assert "group or other" in result.err
    assert_no_token(result)
