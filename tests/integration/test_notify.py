"""The Telegram notifier: secrets, HTML, the outbox, delivery against a fake Bot API.

The real python-telegram-bot runs in a real `python -m forge_tmux` process and talks to
`fake_bot_api.FakeBotAPI` on 127.0.0.1 (NO_PROXY is set by the tmux_env fixture).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from forge_tmux import notify
from forge_tmux.config import TelegramConfig
from forge_tmux.errors import UsageError
from forge_tmux_testing.cli import CliResult
from forge_tmux_testing.fake_bot_api import TOKEN, FakeBotAPI, Script
from forge_tmux_testing.telegram import (
    CHAT,
    assert_no_token,
    outbox_files,
    unreachable,
    unsafe_token_file,
    write_config,
)
from forge_tmux_testing.tmux_world import TmuxEnv

# --- settings and secrets ---------------------------------------------------------------------


def test_token_precedence_env_then_file_then_credential(tmp_path: os.PathLike[str]) -> None:
    token_file = os.path.join(tmp_path, "token")
    with open(token_file, "w") as fh:
        fh.write("111111:FILEtokenFILEtokenFILEtoken\n")
    os.chmod(token_file, 0o600)
    creds = os.path.join(tmp_path, "creds")
    os.mkdir(creds)
    with open(os.path.join(creds, "telegram-token"), "w") as fh:
        fh.write("222222:CREDtokenCREDtokenCREDtoken")
    cfg = TelegramConfig(token_file=token_file, chat_id="7")
    env = {"FORGE_TMUX_TELEGRAM_TOKEN": "333333:ENVtoken", "CREDENTIALS_DIRECTORY": creds}
    assert notify.resolve(cfg, env).token == "333333:ENVtoken"
    del env["FORGE_TMUX_TELEGRAM_TOKEN"]
    assert notify.resolve(cfg, env).token == "111111:FILEtokenFILEtokenFILEtoken"
    settings = notify.resolve(TelegramConfig(chat_id="7"), env)
    assert settings.token == "222222:CREDtokenCREDtokenCREDtoken"
    assert settings.ready
    assert "CRED" not in repr(settings)
    assert notify.resolve(TelegramConfig(), {}).missing().startswith("a bot token")


def test_group_readable_token_file_is_refused(tmp_path: os.PathLike[str]) -> None:
    token_file = os.path.join(tmp_path, "token")
    with open(token_file, "w") as fh:
        fh.write(TOKEN)
    os.chmod(token_file, 0o640)
    with pytest.raises(UsageError, match="chmod 600") as caught:
        notify.resolve(TelegramConfig(token_file=token_file), {})
    assert TOKEN not in str(caught.value)


def test_cli_unsafe_token_file_exits_2_with_one_line(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    unsafe_token_file(tmux_env)
    result = cli("notify", "hello")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "group or other" in result.err
    assert_no_token(result)


def test_cli_not_configured_exits_2(cli: Callable[..., CliResult]) -> None:
    result = cli("notify", "hello")
    assert result.code == 2
    assert "FORGE_TMUX_TELEGRAM_TOKEN" in result.err


# --- text -------------------------------------------------------------------------------------


def test_fit_trims_to_4096_with_a_marker_and_never_splits_an_entity() -> None:
    text = "<b>title</b>\n" + notify.escape("a&b<c> " * 1000)
    trimmed = notify.fit(text)
    assert len(trimmed) <= notify.MAX_CHARS
    assert trimmed.endswith("(trimmed)")
    body = trimmed.removesuffix(notify.TRIMMED)
    assert body.count("&") == body.count(";")  # every entity whole
    short = "<b>x</b>"
    assert notify.fit(short) == short
    bold = notify.fit("<b>" + "y" * 5000 + "</b>")
    assert "</b>" in bold
    assert len(bold) <= notify.MAX_CHARS


def test_html_is_escaped_on_the_wire(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    result = cli("notify", "<b>bold?</b> & <script>")
    assert result.code == 0, result.err
    (call,) = fake.calls_of("sendMessage")
    assert call.params["text"] == "&lt;b&gt;bold?&lt;/b&gt; &amp; &lt;script&gt;"
    assert call.params["parse_mode"] == "HTML"
    assert call.params["chat_id"] == CHAT
    # one request only: no getMe round trip before the message
    assert [c.method for c in fake.calls] == ["sendMessage"]


def test_long_message_is_trimmed_on_the_wire(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    result = cli("notify", "x&" * 5000)
    assert result.code == 0, result.err
    (text,) = fake.messages()
    assert len(text) <= 4096
    assert text.endswith("(trimmed)")


# --- delivery ---------------------------------------------------------------------------------


def test_unreachable_then_delivered_in_order_exactly_once(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    # A short budget cuts the refused-connection back-off (0.5 + 1 + 2 s by default) short.
    write_config(tg_env, "[telegram]\ntimeout = 1\n")
    down = unreachable(tg_env)
    started = time.monotonic()
    first = cli("notify", "first", env=down)
    second = cli("notify", "second", "--json", env=down)
    elapsed = time.monotonic() - started
    assert first.code == 1
    assert "kept in the outbox" in first.out
    assert second.code == 1
    assert second.json()["queued"] == 2
    assert elapsed < 20  # two runs, each bounded by its refused-connection back-off
    assert len(outbox_files(tg_env)) == 2
    assert fake.calls == []

    third = cli("notify", "third", "--json")
    assert third.code == 0, third.err
    assert third.json() == {
        "delivered": 3,
        "queued": 0,
        "uncertain": 0,
        "rejected": 0,
        "error": "",
    }
    assert fake.messages() == ["first", "second", "third"]
    assert outbox_files(tg_env) == []
    again = cli("notify")  # nothing left: nothing sent again
    assert again.code == 0
    assert fake.messages() == ["first", "second", "third"]
    assert_no_token(first, second, third, again)


def test_429_retry_after_is_honoured(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    fake.rate_limit("sendMessage", retry_after=1)
    result = cli("notify", "after the flood")
    assert result.code == 0, result.err
    calls = fake.calls_of("sendMessage")
    assert len(calls) == 2
    assert calls[1].at - calls[0].at >= 0.95
    assert fake.messages() == ["after the flood"]


def test_429_longer_than_the_budget_keeps_the_message(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    fake.rate_limit("sendMessage", retry_after=60)
    started = time.monotonic()
    result = cli("notify", "later")
    assert time.monotonic() - started < 10
    assert result.code == 1
    assert "rate limited" in result.err  # the reason is logged once, on stderr
    assert len(outbox_files(tg_env)) == 1
    assert cli("notify").code == 0
    assert fake.messages() == ["later"]


def test_read_timeout_is_not_retried_and_never_sent_twice(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    write_config(tg_env, "[telegram]\ntimeout = 1.5\n")
    fake.slow("sendMessage", delay=3)
    result = cli("notify", "maybe")
    assert result.code == 1
    assert "uncertain" in result.out
    assert len(fake.calls_of("sendMessage")) == 1
    assert outbox_files(tg_env) == []
    assert len(outbox_files(tg_env, "uncertain")) == 1
    fake.wait_messages(1)  # the fake did take it, after the client gave up
    after = cli("notify", "next")
    assert after.code == 0, after.err
    assert fake.messages() == ["maybe", "next"]


def test_wrong_token_keeps_messages_and_never_shows_the_token(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    env = dict(tg_env.env, FORGE_TMUX_TELEGRAM_TOKEN="987654321:WRONGwrongWRONGwrongWRONGwrong")
    result = cli("-v", "notify", "hello", env=env)
    assert result.code == 1
    assert "WRONGwrong" not in result.out + result.err
    assert len(outbox_files(tg_env)) == 1
    for name in outbox_files(tg_env):
        with open(os.path.join(tg_env.env["FORGE_TMUX_STATE_DIR"], "outbox", name)) as fh:
            assert "WRONG" not in fh.read()


def test_outbox_files_are_private_and_atomic(tmp_path: os.PathLike[str]) -> None:
    box = notify.Outbox(os.path.join(tmp_path, "outbox"))
    names = [box.put(f"m{i}") for i in range(3)]
    assert box.pending() == names
    assert [box.read(n) for n in names] == ["m0", "m1", "m2"]
    assert stat.S_IMODE(os.stat(box.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(box.directory, names[0])).st_mode) == 0o600
    assert not [n for n in os.listdir(box.directory) if n.startswith(".tmp")]
    box.remove(names[0])
    assert box.pending() == names[1:]


def test_telegram_is_not_imported_when_nothing_is_sent(tmp_path: os.PathLike[str]) -> None:
    code = (
        "import sys\n"
        "from forge_tmux import notify\n"
        "from forge_tmux.config import TelegramConfig\n"
        "s = notify.resolve(TelegramConfig(), {})\n"
        "notify.deliver(s, 'x')\n"
        f"notify.deliver(notify.TelegramSettings('1:a', '1', 'http://127.0.0.1:9/bot', 1),"
        f" outbox=notify.Outbox({str(tmp_path)!r}))\n"
        "assert 'telegram' not in sys.modules, 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_server_error_keeps_the_message_and_a_rejected_one_is_set_aside(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Callable[..., CliResult]
) -> None:
    def error(code: int, description: str) -> Script:
        return Script(code, {"ok": False, "error_code": code, "description": description})

    fake.script("sendMessage", error(500, "Internal Server Error"))
    first = cli("notify", "one")
    assert first.code == 1
    assert len(outbox_files(tg_env)) == 1  # the server said no: kept, resent next time
    fake.script("sendMessage", error(400, "Bad Request: can't parse entities"))
    second = cli("notify", "two", "--json")
    assert second.code == 0, second.err
    assert second.json()["rejected"] == 1
    assert fake.messages() == ["two"]  # "one" was rejected for good, "two" went on
    assert len(outbox_files(tg_env, "rejected")) == 1
    fake.script("sendMessage", error(400, "Bad Request: chat not found"))
    third = cli("notify", "three")
    assert third.code == 1
    assert "chat 4242 not found" in third.err
    assert len(outbox_files(tg_env)) == 1


def test_unreadable_token_file_falls_back_to_the_systemd_credential(
    tmp_path: os.PathLike[str],
) -> None:
    creds = os.path.join(tmp_path, "creds")
    os.mkdir(creds)
    with open(os.path.join(creds, "telegram-token"), "w") as fh:
        fh.write("222222:CREDtokenCREDtokenCREDtoken\n")
    missing = os.path.join(tmp_path, "root-only-token")  # as unreadable as root's 0600 file
    cfg = TelegramConfig(token_file=missing, chat_id="7")
    settings = notify.resolve(cfg, {"CREDENTIALS_DIRECTORY": creds})
    assert settings.token == "222222:CREDtokenCREDtokenCREDtoken"
    with pytest.raises(UsageError, match="root-only-token"):
        notify.resolve(cfg, {})
