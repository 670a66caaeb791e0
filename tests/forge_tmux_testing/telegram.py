"""What the Telegram tests share: forge-tmux's settings for the fake Bot API (the `tg_env` and
`fake` fixtures are in plugin.py), the outbox, and the check that no token leaks."""

from __future__ import annotations

import os

from forge_tmux_testing.cli import CliResult
from forge_tmux_testing.fake_bot_api import TOKEN, FakeBotAPI
from forge_tmux_testing.tmux_world import TmuxEnv

CHAT = "4242"
BASE_CONFIG = "[telegram]\ntimeout = 5\n[health]\ntimeout = 0.5\n"


def write_config(env: TmuxEnv, text: str) -> None:
    directory = os.path.join(env.env["XDG_CONFIG_HOME"], "forge-tmux")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.toml"), "w") as fh:
        fh.write(text)


def outbox_files(env: TmuxEnv, shelf: str = "") -> list[str]:
    directory = os.path.join(env.env["FORGE_TMUX_STATE_DIR"], "outbox", shelf)
    try:
        return sorted(n for n in os.listdir(directory) if n.endswith(".html"))
    except FileNotFoundError:
        return []


def assert_no_token(*results: CliResult) -> None:
    secret = TOKEN.split(":", 1)[1]
    for result in results:
        assert secret not in result.out
        assert secret not in result.err


def unreachable(env: TmuxEnv) -> dict[str, str]:
    """The environment with the Bot API URL on a port where nothing listens."""
    return dict(
        env.env, FORGE_TMUX_TELEGRAM_API_URL=f"http://127.0.0.1:{FakeBotAPI.free_port()}/bot"
    )


def unsafe_token_file(env: TmuxEnv) -> str:
    """A config whose token file is readable by everyone (mode 0644): refused by forge-tmux."""
    token_file = os.path.join(env.root, "token")
    with open(token_file, "w") as fh:
        fh.write(TOKEN)
    os.chmod(token_file, 0o644)
    write_config(env, f'[telegram]\ntoken_file = "{token_file}"\nchat_id = 1\n')
    return token_file
