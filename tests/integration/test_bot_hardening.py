"""`python -m forge_tmux bot` as a real process against the fake Bot API, real tmux servers in the
test's private TMUX_TMPDIR: the bot's secrets stay out of the sessions it spawns and out of its
log, and a forwarded command never runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from forge_tmux.bot import FORWARDED
from forge_tmux_testing.fake_bot_api import TOKEN, FakeBotAPI, command_update
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux, session_view

pytestmark = needs_tmux

ALICE = 1111
MARKER = "FORGE_TEST_MARKER"
CONFIG = (
    "[bot]\nallowed_user_ids = [1111]\n"
    "[health]\ntimeout = 1\n"
    '[spawn.profiles.envdump]\ncommand = ["/bin/sh", "-c", "env | sort; exec sleep 100000"]\n'
    f'wait_for = "{MARKER}"\n'
)

Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_bot(tmux_env: TmuxEnv) -> Iterator[Start]:
    """Start the bot with `env` over the test's environment; its output goes to bot.log."""
    config_dir = os.path.join(tmux_env.env["XDG_CONFIG_HOME"], "forge-tmux")
    os.makedirs(config_dir, exist_ok=True)
    with open(os.path.join(config_dir, "config.toml"), "w") as fh:
        fh.write(CONFIG)
    started: list[subprocess.Popen[bytes]] = []

    def start(api_url: str, **env: str) -> subprocess.Popen[bytes]:
        with open(os.path.join(tmux_env.root, "bot.log"), "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "forge_tmux", "-v", "bot"],
                env={**tmux_env.env, "FORGE_TMUX_TELEGRAM_API_URL": api_url, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
            )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def bot_log(env: TmuxEnv) -> str:
    with open(os.path.join(env.root, "bot.log"), encoding="utf-8", errors="replace") as fh:
        return fh.read()


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=10)


def polling(fake: FakeBotAPI) -> None:
    fake.wait_for(lambda: bool(fake.calls_of("getUpdates")), 30)


def test_a_malformed_token_rejected_by_the_api_never_reaches_the_log(
    tmux_env: TmuxEnv, start_bot: Start
) -> None:
    malformed = "12345:SHORTsecretZZ"  # not token-shaped: the pattern alone does not catch it
    with FakeBotAPI() as fake:  # answers 401 to any token but its own
        proc = start_bot(fake.base_url, FORGE_TMUX_TELEGRAM_TOKEN=malformed)
        assert proc.wait(timeout=30) == 2
    log = bot_log(tmux_env)
    assert "rejected the bot token" in log
    assert "SHORTsecret" not in log
    assert "12345:" not in log


def test_a_session_spawned_from_chat_never_sees_the_bot_token(
    tmux_env: TmuxEnv, start_bot: Start
) -> None:
    creds = os.path.join(tmux_env.root, "creds")
    os.mkdir(creds, 0o700)
    with FakeBotAPI() as fake:
        proc = start_bot(
            fake.base_url,
            FORGE_TMUX_TELEGRAM_TOKEN=TOKEN,
            CREDENTIALS_DIRECTORY=creds,
            **{MARKER: "visible"},
        )
        polling(fake)
        fake.add_command("/spawn probe envdump", user_id=ALICE)
        (reply,) = fake.wait_messages(1, timeout=60)
        assert reply.startswith("spawned probe on spawn-probe"), reply
        assert stop(proc) == 0
    for text in session_view(tmux_env, "spawn-probe"):
        assert f"{MARKER}=visible" in text  # what the session can see was really read
        assert TOKEN.split(":", 1)[1] not in text
        assert "FORGE_TMUX_TELEGRAM_" not in text
        assert "CREDENTIALS_DIRECTORY" not in text


def test_a_forwarded_spawn_starts_nothing_and_gets_one_reply(
    tmux_env: TmuxEnv, start_bot: Start
) -> None:
    with FakeBotAPI() as fake:
        proc = start_bot(fake.base_url, FORGE_TMUX_TELEGRAM_TOKEN=TOKEN, **{MARKER: "visible"})
        polling(fake)
        first = fake.add_command("/help", user_id=ALICE)
        fake.wait_messages(1)
        # A stranger's day-old /spawn, forwarded by the allowed user just now.
        update = command_update("/spawn stolen envdump", update_id=first + 1, user_id=ALICE)
        update["message"]["forward_origin"] = {
            "type": "user",
            "date": int(time.time()) - 86400,
            "sender_user": {"id": 6666, "is_bot": False, "first_name": "m"},
        }
        with fake._cond:  # the fake's own queue (it has no public door for odd updates)
            fake.updates.append(update)
            fake._cond.notify_all()
        fake.wait_consumed(first + 1)
        replies = fake.wait_messages(2)
        time.sleep(0.5)  # anything else the bot might still send would arrive now
        assert stop(proc) == 0
    assert replies[0].startswith("/spawn NAME [PROFILE]")
    assert fake.messages()[1:] == [FORWARDED]  # one reply, and nothing else
    assert not any("stolen" in name for name in os.listdir(tmux_env.sockdir))
    assert "ignored a forwarded message from user 1111" in bot_log(tmux_env)
