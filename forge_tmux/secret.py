"""The values forge-tmux keeps secret, and the one rule for keeping them out of what it hands on.

A value is secret once forge-tmux has read it as a secret: the bot token, from
FORGE_TMUX_TELEGRAM_TOKEN, `telegram.token_file` or the systemd credential (`notify.resolve`
registers it; a spawn resolves the configured token for this purpose even when it does not
notify). Two doors use the list:

- `logs.redact` replaces every secret literally, whatever its shape, in every log line. A token
  that does not look like a token (`12345:short`) is printed by python-telegram-bot in full
  (`The token ... was rejected`), so a pattern alone is not enough.
- `tmux.clean_env`, the environment of every tmux call, drops the variables that carry
  forge-tmux's secrets by name (FORGE_TMUX_TELEGRAM_*, CREDENTIALS_DIRECTORY) and any variable
  whose value contains a secret. A tmux server copies the environment it starts with into its
  global environment and hands it to every pane, so whatever it is not given, no session started
  from chat or from `forge-tmux spawn` can read.

Kept free of imports so that the tmux door and the log formatter can use it at no cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# Variables that carry secrets by name. FORGE_TMUX_TELEGRAM_* also holds the chat id and the API
# URL: not secret, but of no use to a session, and a self-hosted API URL may embed credentials.
ENV_PREFIXES: Final = ("FORGE_TMUX_TELEGRAM_",)
# systemd's credential directory: the bot token lies in it, under a name anyone can guess.
ENV_NAMES: Final = frozenset({"CREDENTIALS_DIRECTORY"})

# Characters a URL carries as they are: a token made only of these has no encoded form.
_URL_PLAIN: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:-_.~")

# Shortest secret looked for inside environment values (see carries_secret).
MIN_MATCH: Final = 8

_values: tuple[str, ...] = ()


def add(value: str | None) -> None:
    """Hold `value` secret from now on (its percent-encoded form too: it travels in URLs)."""
    global _values  # noqa: PLW0603 - one registry per process, filled as secrets are read
    if not value:
        return
    forms = {value}
    if not _URL_PLAIN.issuperset(value):
        from urllib.parse import quote  # noqa: PLC0415 - only for tokens of an unusual shape

        forms |= {quote(value, safe=""), quote(value, safe=":")}
    # Longest first, so that a secret containing another is replaced whole.
    _values = tuple(sorted(set(_values) | forms, key=len, reverse=True))


def values() -> tuple[str, ...]:
    return _values


def hide(text: str, mark: str = "<token>") -> str:
    """`text` with every registered secret replaced by `mark`."""
    for value in _values:
        if value in text:
            text = text.replace(value, mark)
    return text


def carries_secret(name: str, value: str) -> bool:
    """Does the environment variable `name=value` carry one of forge-tmux's secrets? By value
    only for secrets of MIN_MATCH characters or more: a shorter one is no token Telegram
    accepts, and it would match innocent values (a placeholder token `x` and HOME=/home/alex)."""
    if name in ENV_NAMES or name.startswith(ENV_PREFIXES):
        return True
    return any(len(secret) >= MIN_MATCH and secret in value for secret in _values)


def scrub_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the variables that carry secrets."""
    return {name: value for name, value in env.items() if not carries_secret(name, value)}


def forget_all() -> None:
    """For tests: start again with no secrets."""
    global _values  # noqa: PLW0603
    _values = ()
