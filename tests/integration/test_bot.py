"""The bot's handlers in-process: the real python-telegram-bot Application talking to the fake
Bot API on 127.0.0.1, updates fed with `process_update`, the fleet replaced by a recorder."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from telegram import Update

from forge_tmux import bot
from forge_tmux.config import BotConfig, Config, Profile, parse
from forge_tmux.errors import UsageError
from forge_tmux.notify import TelegramSettings
from forge_tmux_testing.fake_bot_api import TOKEN, FakeBotAPI, command_update

ALICE = 1111
MALLORY = 6666


class Recorder:
    """Stands in for the fleet: records what the bot asked for."""

    def __init__(self, reply: str = "spawned") -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.reply = reply

    def spawn(self, name: str, profile: Profile) -> bot.Reply:
        self.calls.append(("spawn", name, profile.command))
        return bot.Reply(True, self.reply)

    def health(self) -> bot.Reply:
        self.calls.append(("health",))
        return bot.Reply(True, "tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown")

    def sweep(self) -> bot.Reply:
        self.calls.append(("sweep",))
        return bot.Reply(True, "sweep: 1 removed")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBotAPI]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeBotAPI() as api:
        yield api


def make_config(**bot_keys: Any) -> Config:
    data: dict[str, Any] = {
        "bot": {"allowed_user_ids": [ALICE], **bot_keys},
        "spawn": {"profiles": {"claude": {"command": ["claude", "--resume"]}}},
    }
    return parse(data)


def feed(
    fake: FakeBotAPI, cfg: Config, *updates: dict[str, Any], actions: Recorder | None = None
) -> Recorder:
    """Run the bot's Application over `updates` and wait for every handler to finish."""
    recorder = actions or Recorder()
    settings = TelegramSettings(TOKEN, None, fake.base_url, 5)
    users = bot.allowed_users(cfg.bot, {})
    app = bot.Bot(cfg, settings, recorder, users).build()

    async def go() -> None:
        async with app:
            await app.start()
            for data in updates:
                await app.process_update(Update.de_json(data, app.bot))
            await app.stop()  # waits for non-blocking handlers

    asyncio.run(go())
    return recorder


def test_authorised_spawn_uses_the_default_profile_and_replies_escaped(fake: FakeBotAPI) -> None:
    recorder = feed(fake, make_config(), command_update("/spawn worker"), actions=Recorder("<b>&"))
    assert recorder.calls == [("spawn", "worker", (bot.login_shell(),))]
    assert fake.messages() == ["&lt;b&gt;&amp;"]
    (call,) = fake.calls_of("sendMessage")
    assert call.params["parse_mode"] == "HTML"
    assert call.params["chat_id"] == str(ALICE)


def test_spawn_with_a_named_profile(fake: FakeBotAPI) -> None:
    recorder = feed(fake, make_config(), command_update("/spawn w2 claude"))
    assert recorder.calls == [("spawn", "w2", ("claude", "--resume"))]


def test_stranger_gets_no_answer_and_nothing_runs(
    fake: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = feed(
        fake,
        make_config(),
        command_update("/spawn worker", user_id=MALLORY),
        command_update("/health", user_id=MALLORY),
    )
    assert recorder.calls == []
    assert fake.calls_of("sendMessage") == []
    assert "not allowed" in caplog.text


def test_allowed_user_in_a_chat_not_allowed_is_ignored(fake: FakeBotAPI) -> None:
    cfg = make_config(allowed_chat_ids=[-100200])
    recorder = feed(
        fake,
        cfg,
        command_update("/health", chat_id=-999),
        command_update("/health", chat_id=-100200, update_id=2),
    )
    assert recorder.calls == [("health",)]
    assert len(fake.messages()) == 1


def test_empty_allow_list_serves_nobody(fake: FakeBotAPI) -> None:
    recorder = feed(fake, make_config(allowed_user_ids=[]), command_update("/health"))
    assert recorder.calls == []
    assert fake.calls_of("sendMessage") == []


def test_edited_spawn_never_reruns(fake: FakeBotAPI) -> None:
    recorder = feed(fake, make_config(), command_update("/spawn worker", edited=True))
    assert recorder.calls == []
    assert fake.calls_of("sendMessage") == []


def test_command_older_than_max_age_is_ignored(fake: FakeBotAPI) -> None:
    cfg = make_config(max_command_age=30)
    recorder = feed(fake, cfg, command_update("/spawn worker", age=300))
    assert recorder.calls == []
    assert fake.calls_of("sendMessage") == []


def test_chat_text_never_picks_a_command(fake: FakeBotAPI) -> None:
    recorder = feed(
        fake,
        make_config(),
        command_update("/spawn w $(touch${IFS}/tmp/pwned)"),
        command_update("/spawn w claude;rm", update_id=2),
        command_update("/spawn", update_id=3),
    )
    assert recorder.calls == []
    replies = set(fake.messages())  # handlers run concurrently: any order
    assert replies == {
        "unknown profile '$(touch${IFS}/tmp/pwned)' (known: claude)",
        "unknown profile 'claude;rm' (known: claude)",
        "usage: /spawn NAME [PROFILE]",
    }


def test_session_name_is_passed_as_data_only(fake: FakeBotAPI) -> None:
    recorder = feed(fake, make_config(), command_update("/spawn x;reboot&&`id`"))
    # The harness makes the name safe; the profile's command is the only argv ever run.
    assert recorder.calls == [("spawn", "x;reboot&&`id`", (bot.login_shell(),))]


def test_per_user_rate_limit(fake: FakeBotAPI) -> None:
    cfg = make_config(spawns_per_minute=2)
    updates = [command_update(f"/spawn w{i}", update_id=i + 1) for i in range(4)]
    recorder = feed(fake, cfg, *updates)
    assert len(recorder.calls) == 2
    # Only the first refusal is answered: a flood of answers would meet Telegram's own 429.
    assert sum("rate limit" in m for m in fake.messages()) == 1


def test_health_sweep_help(fake: FakeBotAPI) -> None:
    recorder = feed(
        fake,
        make_config(),
        command_update("/health"),
        command_update("/sweep", update_id=2),
        command_update("/help", update_id=3),
    )
    assert recorder.calls == [("health",), ("sweep",)]
    messages = fake.messages()
    assert "tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown" in messages
    assert "sweep: 1 removed" in messages
    assert any("profiles: claude" in m for m in messages)


def test_allowed_users_from_the_environment() -> None:
    cfg = BotConfig(allowed_user_ids=(1,))
    assert bot.allowed_users(cfg, {}) == {1}
    assert bot.allowed_users(cfg, {"FORGE_TMUX_BOT_ALLOWED_USERS": " 5, 6 ,"}) == {5, 6}
    with pytest.raises(UsageError, match="comma-separated"):
        bot.allowed_users(cfg, {"FORGE_TMUX_BOT_ALLOWED_USERS": "5;rm"})


def test_rate_limit_window_slides() -> None:
    now = [0.0]
    limit = bot.RateLimit(2, clock=lambda: now[0])
    assert limit.allow(1) and limit.allow(1)
    assert not limit.allow(1)
    assert limit.allow(2)
    now[0] = 60.0
    assert limit.allow(1)


def test_pick_profile_default_and_unknown() -> None:
    cfg = parse({"spawn": {"default_profile": "c", "profiles": {"c": {"command": ["c"]}}}})
    assert bot.pick_profile(cfg, None) == ("c", Profile(("c",)))
    assert "unknown profile" in str(bot.pick_profile(cfg, "nope"))
    assert os.path.isabs(bot.login_shell())


def test_health_answers_while_a_spawn_is_running(fake: FakeBotAPI) -> None:
    class SlowSpawn(Recorder):
        """A spawn that can only finish once /health has been answered meanwhile."""

        def __init__(self) -> None:
            super().__init__()
            self.health_seen = threading.Event()

        def spawn(self, name: str, profile: Profile) -> bot.Reply:
            finished = self.health_seen.wait(timeout=5)
            return bot.Reply(True, "spawned" if finished else "spawn blocked /health")

        def health(self) -> bot.Reply:
            self.health_seen.set()
            return super().health()

    feed(
        fake,
        make_config(),
        command_update("/spawn slow"),
        command_update("/health", update_id=2),
        actions=SlowSpawn(),
    )
    # Either reply may be sent first; "spawned" proves /health ran while the spawn waited.
    assert sorted(fake.messages()) == ["spawned", "tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown"]


def test_a_failing_action_is_answered(fake: FakeBotAPI) -> None:
    class Broken(Recorder):
        def sweep(self) -> bot.Reply:
            raise RuntimeError("boom")

    feed(fake, make_config(), command_update("/sweep"), actions=Broken())
    assert fake.messages() == ["/sweep failed: internal error (see the bot's log)"]


def test_rate_limit_answers_the_first_refusal_of_each_window() -> None:
    now = [0.0]
    limit = bot.RateLimit(1, clock=lambda: now[0])
    assert limit.allow(1)
    assert not limit.allow(1) and limit.first_refusal(1)
    assert not limit.allow(1) and not limit.first_refusal(1)  # quiet for the rest of it
    assert limit.allow(2)  # other users have windows of their own
    now[0] = 60.0
    assert limit.allow(1)  # a new window ...
    assert not limit.allow(1) and limit.first_refusal(1)  # ... and its first refusal is told


def forwarded(update: dict[str, Any], by: int = MALLORY, age: float = 86400) -> dict[str, Any]:
    """`update` as a forward of a message `by` wrote `age` seconds ago."""
    update["message"]["forward_origin"] = {
        "type": "user",
        "date": int(time.time() - age),
        "sender_user": {"id": by, "is_bot": False, "first_name": "m"},
    }
    return update


def test_a_forwarded_command_never_runs_and_is_answered_once(fake: FakeBotAPI) -> None:
    recorder = feed(
        fake,
        make_config(),
        forwarded(command_update("/spawn stolen")),
        forwarded(command_update("/spawn stolen2 claude", update_id=2)),
        forwarded(command_update("/sweep", update_id=3), by=ALICE, age=0),
    )
    assert recorder.calls == []
    assert fake.messages() == [bot.FORWARDED]  # one reply, not one per forward


def test_a_forwarded_plain_text_gets_no_answer(fake: FakeBotAPI) -> None:
    update = forwarded(command_update("/x"))
    update["message"]["text"] = "hello"
    del update["message"]["entities"]
    recorder = feed(fake, make_config(), update, command_update("/health", update_id=2))
    assert recorder.calls == [("health",)]  # the user's own command still runs
    assert len(fake.messages()) == 1
