"""Secrets never reach a spawned session, and never a log line, whatever their shape.

Real tmux servers in the test's private TMUX_TMPDIR, started through `forge-tmux spawn`; what a
session can see is read twice: from the pane (the session runs `env`, the pane is captured) and
from the server's global environment (`show-environment -g`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from forge_tmux import logs, secret, tmux
from forge_tmux.config import TelegramConfig
from forge_tmux.errors import UsageError
from forge_tmux.notify import hold_token_secret, resolve
from forge_tmux_testing.cli import Cli, CliResult
from forge_tmux_testing.fake_bot_api import TOKEN
from forge_tmux_testing.telegram import write_config
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux, session_view

SHORT_TOKEN = "12345:SHORTsecretZZ"  # not token-shaped: the pattern alone misses it
FILE_TOKEN = "777777:FILEtokenFILEtokenFILEtoken"
MARKER = "FORGE_TEST_MARKER=visible"  # proves the reading works: it must be seen


@pytest.fixture(autouse=True)
def no_secrets() -> Iterator[None]:
    secret.forget_all()
    yield
    secret.forget_all()


def spawn_env_dump(cli: Cli, env: dict[str, str]) -> CliResult:
    # --wait-for the marker: the pane has printed the whole environment before we read it.
    marker = MARKER.split("=", maxsplit=1)[0]
    command = ["/bin/sh", "-c", "env | sort; exec sleep 100000"]
    return cli("spawn", "probe", "--wait-for", marker, "--", *command, env=env)


def assert_clean(text: str, *tokens: str) -> None:
    assert MARKER in text
    for token in tokens:
        assert token not in text
        assert token.split(":", 1)[1] not in text
    assert "FORGE_TMUX_TELEGRAM_" not in text
    assert "CREDENTIALS_DIRECTORY" not in text


def assert_spawn_hides(env: TmuxEnv, cli: Cli, token: str, **variables: str) -> None:
    """`forge-tmux spawn` with `variables` added: neither the pane nor the server's global
    environment shows the token, a secret variable or any of `variables` (each carries it)."""
    result = spawn_env_dump(cli, {**env.env, **variables, **dict([MARKER.split("=")])})
    assert result.code == 0, result.err
    for text in session_view(env, "spawn-probe"):
        assert_clean(text, token)
        for name in variables:
            assert f"{name}=" not in text


@needs_tmux
def test_spawn_hands_no_secret_to_the_session(tmux_env: TmuxEnv, cli: Cli) -> None:
    creds = os.path.join(tmux_env.root, "creds")
    os.mkdir(creds, 0o700)
    assert_spawn_hides(
        tmux_env,
        cli,
        TOKEN,
        FORGE_TMUX_TELEGRAM_TOKEN=TOKEN,
        FORGE_TMUX_TELEGRAM_CHAT_ID="4242",
        CREDENTIALS_DIRECTORY=creds,
        MY_COPY_OF_THE_TOKEN=f"x{TOKEN}x",  # the same secret under a name we cannot know
    )


@needs_tmux
def test_the_configured_token_file_value_is_kept_out_too(tmux_env: TmuxEnv, cli: Cli) -> None:
    token_file = os.path.join(tmux_env.root, "token")
    with open(token_file, "w") as fh:
        fh.write(FILE_TOKEN + "\n")
    os.chmod(token_file, 0o600)
    write_config(tmux_env, f'[telegram]\ntoken_file = "{token_file}"\n')
    # A spawn without --notify: the token is read only to be kept out.
    assert_spawn_hides(tmux_env, cli, FILE_TOKEN, LEAKED=FILE_TOKEN)


def test_clean_env_drops_secrets_by_name_and_by_value() -> None:
    resolve(TelegramConfig(chat_id="1"), {"FORGE_TMUX_TELEGRAM_TOKEN": SHORT_TOKEN})
    env = {
        "PATH": "/bin",
        "TMUX": "/tmp/x,1,0",
        "FORGE_TMUX_TELEGRAM_API_URL": "http://127.0.0.1/bot",
        "CREDENTIALS_DIRECTORY": "/run/credentials/x",
        "COPY": f"Bearer {SHORT_TOKEN}",
        "FORGE_TMUX_STATE_DIR": "/state",
    }
    assert tmux.clean_env(env) == {"PATH": "/bin", "FORGE_TMUX_STATE_DIR": "/state"}
    secret.add("x")  # a placeholder, no token: it must not empty the environment
    assert tmux.clean_env({"HOME": "/home/alex"}) == {"HOME": "/home/alex"}


def test_an_unreadable_token_file_is_no_error_when_only_held_secret(tmp_path: str) -> None:
    hold_token_secret(TelegramConfig(token_file=os.path.join(tmp_path, "missing")))
    assert secret.values() == ()


def test_redaction_is_literal_whatever_the_shape() -> None:
    odd = "12345:has/slash?and space"
    resolve(TelegramConfig(chat_id="1"), {"FORGE_TMUX_TELEGRAM_TOKEN": SHORT_TOKEN})
    secret.add(odd)
    text = (
        f"InvalidToken: The token `{SHORT_TOKEN}` was rejected; "
        f"url http://h/bot12345%3Ahas%2Fslash%3Fand%20space/getMe; raw {odd}; "
        "another bot's 987654321:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    )
    redacted = logs.redact(text)
    assert "SHORTsecret" not in redacted
    assert "slash" not in redacted
    assert "AAAAAAAAAAAAAAAAAAAA" not in redacted
    assert redacted.count("<token>") == 4


def test_a_logged_exception_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    secret.add(SHORT_TOKEN)
    formatter = logs._Formatter(journal=False)
    try:
        raise ValueError(f"The token `{SHORT_TOKEN}` was rejected")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    assert "Traceback" in text
    assert "SHORTsecret" not in text


def test_what_escapes_the_logger_is_redacted_too() -> None:
    """An exception nothing caught (main thread or another) and a warning: their text goes to
    stderr through the same redaction."""
    code = (
        "import threading, warnings\n"
        "from forge_tmux import logs, secret\n"
        "logs.setup()\n"
        f"secret.add({SHORT_TOKEN!r})\n"
        "def fail():\n"
        f"    raise RuntimeError('in a thread: {SHORT_TOKEN}')\n"
        "thread = threading.Thread(target=fail)\n"
        "thread.start()\n"
        "thread.join()\n"
        f"warnings.warn('a warning: {SHORT_TOKEN}')\n"
        f"raise ValueError('The token `{SHORT_TOKEN}` was rejected')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 1
    for seen in ("RuntimeError: in a thread: <token>", "a warning: <token>", "ValueError"):
        assert seen in proc.stderr
    assert "SHORTsecret" not in proc.stderr


def test_a_fifo_as_token_file_is_refused_not_waited_on(tmp_path: str) -> None:
    # A spawn reads the configured token file to keep its value secret: it must not hang there.
    fifo = os.path.join(tmp_path, "token")
    os.mkfifo(fifo, 0o600)
    with pytest.raises(UsageError, match="not a regular file"):
        resolve(TelegramConfig(token_file=fifo))
    hold_token_secret(TelegramConfig(token_file=fifo))  # returns: nothing to hold
