"""The bot's /list, /peek and /kill in-process: the real python-telegram-bot Application against
the fake Bot API on 127.0.0.1, and the real fleet (FleetActions) on real tmux servers."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from telegram import Update

from forge_tmux import bot
from forge_tmux.config import Config, parse
from forge_tmux.notify import TelegramSettings
from forge_tmux_testing.bot_process import BotProcess, polling
from forge_tmux_testing.fake_bot_api import TOKEN, FakeBotAPI, callback_update, command_update
from forge_tmux_testing.processes import pid_alive, wait_for
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux

pytestmark = needs_tmux

ALICE = 1111
BOB = 2222  # allowed too, but did not ask
MALLORY = 6666  # not allowed at all


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBotAPI]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeBotAPI() as api:
        yield api


@pytest.fixture
def fleet(tmux_env: TmuxEnv, monkeypatch: pytest.MonkeyPatch) -> TmuxEnv:
    """This process talks to the test's private tmux world, like the CLI does."""
    for key in ("TMUX_TMPDIR", "FORGE_TMUX_STATE_DIR"):
        monkeypatch.setenv(key, tmux_env.env[key])
    tmux_env.tmux(
        "-L",
        "spawn-alpha",
        "new-session",
        "-d",
        "-s",
        "alpha",
        "echo hello-from-alpha; echo '<b>&amp;</b>'; exec sleep 100000",
        check=True,
    )
    tmux_env.start("homebase", session="home")
    tmux_env.pids.append(server_pid(tmux_env, "spawn-alpha"))
    return tmux_env


def server_pid(env: TmuxEnv, label: str) -> int:
    return int(env.tmux("-L", label, "display-message", "-p", "#{pid}", check=True).stdout)


def config() -> Config:
    return parse({"bot": {"allowed_user_ids": [ALICE, BOB]}})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Session:
    """One running Application; `send` feeds an update and waits for its handlers."""

    def __init__(self, fake: FakeBotAPI, clock: Clock) -> None:
        cfg = config()
        settings = TelegramSettings(TOKEN, None, fake.base_url, 5)
        sockdir = os.path.join(os.environ["TMUX_TMPDIR"], f"tmux-{os.geteuid()}")
        actions = bot.FleetActions(cfg, [sockdir])
        self.bot = bot.Bot(cfg, settings, actions, frozenset({ALICE, BOB}), actions, clock)
        self.app = self.bot.build()

    async def send(self, data: dict[str, Any]) -> None:
        # Handlers of non-blocking commands run as tasks: tests wait for their effects.
        await self.app.process_update(Update.de_json(data, self.app.bot))


def run(fake: FakeBotAPI, clock: Clock, script: Callable[[Session], Any]) -> None:
    session = Session(fake, clock)

    async def go() -> None:
        async with session.app:
            await session.app.start()
            await script(session)
            await session.app.stop()

    asyncio.run(go())


def last_keyboard(fake: FakeBotAPI) -> dict[str, str]:
    """The buttons of the last message with an inline keyboard: text -> callback data."""
    for call in reversed(fake.calls_of("sendMessage")):
        markup = call.params.get("reply_markup")
        if markup:
            rows = json.loads(markup)["inline_keyboard"]
            return {b["text"]: b["callback_data"] for row in rows for b in row}
    raise AssertionError("no keyboard sent")


async def settle(fake: FakeBotAPI, method: str, count: int) -> None:
    for _ in range(500):
        if len(fake.calls_of(method)) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{method} was not called {count} times")


def test_list_and_peek(fake: FakeBotAPI, fleet: TmuxEnv) -> None:
    async def script(s: Session) -> None:
        await s.send(command_update("/list"))
        await settle(fake, "sendMessage", 1)
        await s.send(command_update("/peek alpha 5", update_id=2))
        await settle(fake, "sendMessage", 2)

    run(fake, Clock(), script)
    listed, peeked = fake.messages()
    assert listed.startswith("tmux sessions\n<pre>")
    assert "spawn-alpha" in listed and "homebase" in listed
    assert peeked.startswith("alpha: last 5 lines\n<pre>")
    assert "hello-from-alpha" in peeked
    assert "&lt;b&gt;&amp;amp;&lt;/b&gt;" in peeked  # the pane's text is escaped, never markup
    assert fake.calls_of("sendMessage")[1].params["parse_mode"] == "HTML"


def test_kill_asks_and_kills_only_after_the_asker_confirms(
    fake: FakeBotAPI, fleet: TmuxEnv
) -> None:
    alpha = server_pid(fleet, "spawn-alpha")
    home = server_pid(fleet, "homebase")

    async def script(s: Session) -> None:
        await s.send(command_update("/kill alpha"))
        await settle(fake, "sendMessage", 1)
        buttons = last_keyboard(fake)
        assert pid_alive(alpha)  # asking kills nothing
        # An allowed user who did not ask: told so, nothing happens.
        await s.send(callback_update(buttons["Kill"], update_id=2, user_id=BOB))
        await settle(fake, "answerCallbackQuery", 1)
        assert pid_alive(alpha)
        # A stranger: no answer at all, nothing happens.
        await s.send(callback_update(buttons["Kill"], update_id=3, user_id=MALLORY))
        assert pid_alive(alpha)
        await s.send(callback_update(buttons["Kill"], update_id=4, user_id=ALICE))
        await settle(fake, "editMessageText", 1)

    run(fake, Clock(), script)
    answers = [c.params.get("text", "") for c in fake.calls_of("answerCallbackQuery")]
    assert answers[0] == "only the user who asked can answer"
    assert len(answers) == 2  # the stranger got none
    assert not pid_alive(alpha) or fleet.tmux("-L", "spawn-alpha", "has-session").returncode != 0
    assert "killed alpha on spawn-alpha" in fake.calls_of("editMessageText")[0].params["text"]
    assert pid_alive(home)


def test_an_expired_question_does_nothing_and_says_so(fake: FakeBotAPI, fleet: TmuxEnv) -> None:
    alpha = server_pid(fleet, "spawn-alpha")
    clock = Clock()

    async def script(s: Session) -> None:
        await s.send(command_update("/kill alpha"))
        await settle(fake, "sendMessage", 1)
        clock.now += bot.CONFIRM_SECONDS + 1
        await s.send(callback_update(last_keyboard(fake)["Kill"], update_id=2))
        await settle(fake, "editMessageText", 1)

    run(fake, clock, script)
    assert pid_alive(alpha)
    (answer,) = fake.calls_of("answerCallbackQuery")
    assert "expired" in answer.params["text"]
    assert "expired" in fake.calls_of("editMessageText")[0].params["text"]


def test_kill_refuses_homebase_and_hostile_names_run_nothing(
    fake: FakeBotAPI, fleet: TmuxEnv
) -> None:
    mark = os.path.join(fleet.root, "pwned")
    hostile = [f"$(touch {mark})", f"`touch {mark}`", f"x;touch {mark}", "=home"]

    async def script(s: Session) -> None:
        await s.send(command_update("/kill home"))
        for i, name in enumerate(hostile, start=2):
            await s.send(command_update(f"/kill {name}", update_id=i))
            await s.send(command_update(f"/peek {name}", update_id=100 + i))
        await settle(fake, "sendMessage", 1 + 2 * len(hostile))

    run(fake, Clock(), script)
    texts = fake.messages()
    assert sum("protected" in t for t in texts) == 1
    assert all("reply_markup" not in c.params for c in fake.calls_of("sendMessage"))
    assert not os.path.exists(mark)
    assert fleet.tmux("-L", "homebase", "has-session", "-t", "=home").returncode == 0


def test_the_menu_is_registered_at_start(fake: FakeBotAPI) -> None:
    cfg = config()
    settings = TelegramSettings(TOKEN, None, fake.base_url, 5)
    the_bot = bot.Bot(cfg, settings, bot.FleetActions(cfg, []), frozenset({ALICE}))
    app = the_bot.build()
    assert app.post_init == the_bot.register_commands  # run_polling calls it after initialize

    async def go() -> None:
        async with app:
            await the_bot.register_commands(app)

    asyncio.run(go())
    (call,) = fake.calls_of("setMyCommands")
    names = [c["command"] for c in json.loads(call.params["commands"])]
    assert {"list", "peek", "kill", "spawn"} <= set(names)


def test_the_running_bot_sets_its_menu_and_kills_after_confirmation(
    tmux_env: TmuxEnv, start_bot: Callable[[str], BotProcess]
) -> None:
    with FakeBotAPI() as fake:
        process = start_bot(fake.base_url)
        polling(fake)
        (menu,) = fake.calls_of("setMyCommands")
        assert "kill" in [c["command"] for c in json.loads(menu.params["commands"])]
        asked = fake.calls_of("getUpdates")[-1].params["allowed_updates"]
        assert "callback_query" in json.loads(asked)  # or the buttons would never arrive
        fake.add_command("/spawn doomed sleeper", user_id=ALICE)
        fake.wait_messages(1, timeout=30)
        pid = server_pid(tmux_env, "spawn-doomed")
        fake.add_command("/kill doomed", user_id=ALICE)
        fake.wait_messages(2, timeout=30)
        fake.add_callback(last_keyboard(fake)["Kill"], user_id=ALICE)
        fake.wait_for(lambda: bool(fake.calls_of("editMessageText")), timeout=30)
        assert "killed doomed" in fake.calls_of("editMessageText")[0].params["text"]
        wait_for(lambda: not pid_alive(pid))
        assert not os.path.lexists(tmux_env.path("spawn-doomed"))
        process.stop()
