"""`python -m forge_tmux bot` as a real process: the real python-telegram-bot polling the fake
Bot API on 127.0.0.1, real tmux servers in the test's private TMUX_TMPDIR."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from forge_tmux_testing.bot_process import BotProcess, polling
from forge_tmux_testing.cli import CliResult
from forge_tmux_testing.fake_bot_api import TOKEN, FakeBotAPI
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux

ALICE = 1111
MALLORY = 6666

pytestmark = needs_tmux


def has_session(env: TmuxEnv, socket: str, session: str) -> bool:
    return env.tmux("-L", socket, "has-session", "-t", f"={session}").returncode == 0


def test_spawn_cleans_a_stale_socket_health_answers_sigterm_stops_cleanly(
    tmux_env: TmuxEnv, start_bot: Callable[[str], BotProcess]
) -> None:
    stale = tmux_env.stale("spawn-worker")
    with FakeBotAPI() as fake:
        queued_before_start = fake.add_command("/spawn early")
        bot = start_bot(fake.base_url)
        polling(fake)
        assert [u["update_id"] for u in fake.dropped] == [queued_before_start]

        fake.add_command("/spawn worker", user_id=ALICE)
        (reply,) = fake.wait_messages(1, timeout=30)
        assert reply == "spawned worker on spawn-worker after cleaning 1 stale socket"
        assert has_session(tmux_env, "spawn-worker", "worker")
        assert os.path.exists(stale)  # the same path, now a live server's socket

        fake.add_command("/health", user_id=ALICE)
        replies = fake.wait_messages(2)
        assert replies[1] == "tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown"

        code, took = bot.stop()
        assert code == 0
        assert took < 5
        assert has_session(tmux_env, "spawn-worker", "worker")  # sessions outlive the bot
        assert not os.path.exists(os.path.join(tmux_env.sockdir, "spawn-early"))
    log = bot.log()
    assert TOKEN.split(":", 1)[1] not in log
    assert "Traceback" not in log


def test_strangers_edits_and_shell_text_start_nothing(
    tmux_env: TmuxEnv, start_bot: Callable[[str], BotProcess]
) -> None:
    marker = os.path.join(tmux_env.root, "pwned")
    with FakeBotAPI() as fake:
        bot = start_bot(fake.base_url)
        polling(fake)
        fake.add_command("/spawn intruder", user_id=MALLORY)
        fake.add_command("/spawn edited", user_id=ALICE, edited=True)
        fake.add_command(f"/spawn w $(touch${{IFS}}{marker})", user_id=ALICE)
        fake.add_command(f"/spawn x;touch${{IFS}}{marker};`touch${{IFS}}{marker}`", user_id=ALICE)
        replies = fake.wait_messages(2, timeout=30)
        fake.add_command("/help", user_id=ALICE)
        replies = fake.wait_messages(3)
        time.sleep(0.3)  # anything else the bot might still send would arrive now
        assert len(fake.messages()) == 3
        assert any("unknown profile" in r for r in replies)
        spawned = next(r for r in replies if r.startswith("spawned "))
        # The name was made safe (and hashed); the login shell is all the session runs.
        assert ";" not in spawned and "`" not in spawned and "$" not in spawned
        assert replies[2].startswith("/spawn NAME [PROFILE]")
        bot.stop()
    assert not os.path.exists(marker)
    names = os.listdir(tmux_env.sockdir)
    assert not any("intruder" in n or "edited" in n for n in names)
    for chat_id in {c.params.get("chat_id") for c in fake.calls_of("sendMessage")}:
        assert chat_id == str(ALICE)
    assert "not allowed" in bot.log()


def test_api_down_at_start_then_up(
    tmux_env: TmuxEnv, start_bot: Callable[[str], BotProcess]
) -> None:
    port = FakeBotAPI.free_port()
    fake = FakeBotAPI(port)
    bot = start_bot(fake.base_url)
    time.sleep(1.5)
    assert bot.proc.poll() is None  # waiting for the network, not dead
    with fake:
        polling(fake, timeout=30)
        fake.add_command("/help", user_id=ALICE)
        (reply,) = fake.wait_messages(1)
        assert "/spawn NAME [PROFILE]" in reply
        code, took = bot.stop()
    assert code == 0
    assert took < 5


def test_api_down_later_then_back(
    tmux_env: TmuxEnv, start_bot: Callable[[str], BotProcess]
) -> None:
    """The network goes away while the bot long-polls, then comes back: the bot keeps running
    and serves the next command, without a restart."""
    fake = FakeBotAPI().start()
    try:
        bot = start_bot(fake.base_url)
        polling(fake, timeout=30)
        fake.add_command("/help", user_id=ALICE)
        fake.wait_messages(1)
        fake.stop()  # connections refused from now on
        time.sleep(3)
        assert bot.proc.poll() is None  # still running: waiting for the network, not dead
        fake.start()  # same port, same update numbering
        fake.add_command("/help", user_id=ALICE)
        replies = fake.wait_messages(2, timeout=60)
        assert "/spawn NAME [PROFILE]" in replies[1]
        code, took = bot.stop()
    finally:
        fake.stop()
    assert code == 0
    assert took < 5
    log = bot.log()
    assert "Telegram unreachable, retrying" in log  # the outage really happened
    assert "Traceback" not in log


def test_rejected_token_exits_2_without_showing_it(
    tmux_env: TmuxEnv, start_bot: Callable[[str], BotProcess]
) -> None:
    with FakeBotAPI(token="1:another") as fake:
        bot = start_bot(fake.base_url)
        assert bot.proc.wait(timeout=20) == 2
    log = bot.log()
    assert "rejected the bot token" in log
    assert TOKEN.split(":", 1)[1] not in log
    assert "Traceback" not in log  # one line per failure in the journal


def test_bot_without_a_token_is_a_usage_error(cli: Callable[..., CliResult]) -> None:
    result = cli("bot")
    assert result.code == 2
    assert "FORGE_TMUX_TELEGRAM_TOKEN" in result.err
