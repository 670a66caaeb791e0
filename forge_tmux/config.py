"""The config file (TOML): typed, validated, every unknown key and wrong type an error naming it.

A missing file at the default path means defaults; a missing file given with `--config` is an
error (the operator asked for that file). Validation is hand-written because the schema is small
and a validation library would cost start-up time on the sweep's hot path. The records are
NamedTuples rather than frozen dataclasses for the same reason: creating a dataclass costs ~0.35 ms
at import, a NamedTuple ~0.05 ms, and the sweep's cold start has a budget of a few milliseconds.

One rule for every path key (`socket_dirs`, `telegram.token_file`): `~` and `~user` are expanded
here, when the file is loaded, and the result must be absolute. Every command (sweep, notify,
doctor, the rendered units) then sees the same path, whatever its working directory.

Every duration key is a number of seconds above 0 and at most `MAX_SECONDS` (one day), in the
config and on the command line (`check_seconds` is the one rule for both). NaN and infinity are
valid TOML and valid Python floats, and so is 1e308; each would reach a wait that never ends
(NaN compares false with every deadline) or a system call that overflows (poll() takes a C int
of milliseconds, 24.8 days at most; `threading` waits stop near 292 years). No probe, spawn or
delivery has a reason to wait a day, so a bound far below every overflow and far above every
sane value costs nothing and turns each of those into exit 2 with the key's name.
"""

import math
import os
from collections.abc import Callable
from typing import Any, Final, NamedTuple, TypeVar

from forge_tmux.errors import ConfigError
from forge_tmux.paths import default_config_path

T = TypeVar("T")

NOTIFY_POLICIES: Final = ("never", "changes", "always")
MAX_SECONDS: Final = 86_400.0
# tomllib parses arrays and inline tables recursively; this deep a value only comes from a
# hostile or broken file, and finding its key must not itself recurse.
# 64 openers with no closer between them: never in a sane file, always in one that recursed.
_DEEP_NESTING: Final = r"(?:[\[{][^\[\]{}]*){64}"
_KEY_LINE: Final = r"(?m)^[ \t]*([A-Za-z0-9_.\"' \t-]+?)[ \t]*="
_TABLE_LINE: Final = r"(?m)^[ \t]*\[\[?[ \t]*([^\]\n]+?)[ \t]*\]\]?"


class Profile(NamedTuple):
    """What `/spawn NAME PROFILE` may start: only commands written here, never chat text."""

    command: tuple[str, ...]
    wait_for: str | None = None


class BootSession(NamedTuple):
    """A `[[boot.sessions]]` entry, started by `forge-tmux post-boot`."""

    name: str
    command: tuple[str, ...]
    wait_for: str | None = None
    socket_name: str | None = None


class SweepConfig(NamedTuple):
    timeout: float = 2.0
    # When the periodic sweep notifies Telegram: never, only on changes (removed something, a
    # server gone, a hung server; once per event), or always.
    notify: str = "changes"


class SpawnConfig(NamedTuple):
    ready_timeout: float = 30.0
    default_profile: str | None = None
    profiles: dict[str, Profile] = {}  # noqa: RUF012 - never mutated; NamedTuple default


class BootConfig(NamedTuple):
    sessions: tuple[BootSession, ...] = ()
    restore: bool = False  # post-boot also re-spawns the saved snapshot (`post-boot --restore`)


class TelegramConfig(NamedTuple):
    token_file: str | None = None
    chat_id: str | None = None
    api_url: str | None = None
    # Upper bound on how long one notifying command may spend on Telegram, retries included.
    timeout: float = 20.0


class BotConfig(NamedTuple):
    allowed_user_ids: tuple[int, ...] = ()
    allowed_chat_ids: tuple[int, ...] = ()
    # Commands older than this (seconds) when the bot sees them are ignored, not run.
    max_command_age: float = 120.0
    # Spawns one user may start per minute.
    spawns_per_minute: int = 5


class HealthConfig(NamedTuple):
    # How long a live server may take to answer `list-sessions` before it counts as hung.
    timeout: float = 2.0
    parallel: int = 32


class Config(NamedTuple):
    path: str | None = None
    socket_dirs: tuple[str, ...] = ()
    protected_sockets: tuple[str, ...] = ("homebase",)
    sweep: SweepConfig = SweepConfig()
    spawn: SpawnConfig = SpawnConfig()
    boot: BootConfig = BootConfig()
    telegram: TelegramConfig = TelegramConfig()
    bot: BotConfig = BotConfig()
    health: HealthConfig = HealthConfig()


class _Table:
    """One TOML table being read: remembers its dotted name for error messages."""

    def __init__(self, data: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown key '{_join(where, unknown[0])}'")
        self.data = data
        self.where = where

    def get(self, key: str, check: Callable[[Any, str], T], default: T) -> T:
        if key not in self.data:
            return default
        return check(self.data[key], _join(self.where, key))

    def table(self, key: str, allowed: tuple[str, ...]) -> "_Table":
        value = self.data.get(key, {})
        name = _join(self.where, key)
        if not isinstance(value, dict):
            raise ConfigError(f"'{name}' must be a table")
        return _Table(value, name, allowed)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"'{name}' must be a string")
    _no_nul(value, name)
    return value


def _no_nul(value: str, name: str) -> None:
    # TOML allows "\u0000"; no path, argument or name we hand to the system can hold one.
    if "\0" in value:
        raise ConfigError(f"'{name}' must not contain a NUL character")


def _opt_str(value: Any, name: str) -> str | None:
    return _str(value, name)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"'{name}' must be true or false")
    return value


def _nonempty_str(value: Any, name: str) -> str:
    if not _str(value, name):
        raise ConfigError(f"'{name}' must not be empty")
    return str(value)


def check_seconds(value: float) -> str | None:
    """Why `value` is not a usable duration, or None: the rule for config keys and options."""
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):  # NaN fails every comparison
        return f"must be a positive number of seconds, at most {MAX_SECONDS:.0f} (one day)"
    return None


def _seconds(value: Any, name: str) -> float:
    # bool is an int in Python; `timeout = true` is a mistake, not 1 second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"'{name}' must be a positive number of seconds")
    # A huge TOML integer would overflow float(); it is out of range either way.
    problem = check_seconds(float(value) if abs(value) <= MAX_SECONDS else math.inf)
    if problem:
        raise ConfigError(f"'{name}' {problem}, not {value:g}")
    return float(value)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"'{name}' must be a whole number of at least 1")
    return value


def _str_list(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"'{name}' must be a list of strings")
    for item in value:
        _no_nul(item, name)
    return tuple(value)


def _path(value: Any, name: str) -> str:
    """The one rule for path keys: `~` expanded at load time, then absolute."""
    raw = _str(value, name)
    if not raw:
        raise ConfigError(f"'{name}' must not be an empty path")
    path = os.path.expanduser(raw)
    if not os.path.isabs(path):
        raise ConfigError(f"'{name}' must be an absolute path or start with ~, not {raw!r}")
    return path


def _opt_path(value: Any, name: str) -> str | None:
    return _path(value, name)


def _dir_list(value: Any, name: str) -> tuple[str, ...]:
    dirs = _str_list(value, name)
    if not all(dirs):
        raise ConfigError(f"'{name}' must not contain an empty path")
    return tuple(_path(d, name) for d in dirs)


def _argv(value: Any, name: str) -> tuple[str, ...]:
    argv = _str_list(value, name)
    if not argv or not argv[0]:
        raise ConfigError(f"'{name}' must be a non-empty list of strings (an argument vector)")
    return argv


def _id_list(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ConfigError(f"'{name}' must be a list of integer ids")
    return tuple(value)


def _chat_id(value: Any, name: str) -> str:
    # Telegram chat ids are integers, or '@channelname'; TOML users write either.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ConfigError(f"'{name}' must be a string or an integer")
    return _nonempty_str(value, name)


def _policy(value: Any, name: str) -> str:
    if value not in NOTIFY_POLICIES:
        raise ConfigError(f"'{name}' must be one of {', '.join(NOTIFY_POLICIES)}")
    return str(value)


def _regex(value: Any, name: str) -> str:
    import re  # noqa: PLC0415 - only configs with patterns pay for re

    pattern = _str(value, name)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"'{name}' is not a valid regular expression: {exc}") from None
    return pattern


def _opt_regex(value: Any, name: str) -> str | None:
    return _regex(value, name)


def parse(data: dict[str, Any], path: str | None = None) -> Config:
    """Turn a decoded TOML document into a Config, or raise ConfigError naming the bad key."""
    top = _Table(
        data,
        "",
        (
            "socket_dirs",
            "protected_sockets",
            "sweep",
            "spawn",
            "boot",
            "telegram",
            "bot",
            "health",
        ),
    )
    defaults = Config()

    sweep = top.table("sweep", ("timeout", "notify"))
    spawn = top.table("spawn", ("ready_timeout", "default_profile", "profiles"))
    profiles_table = spawn.table("profiles", tuple(spawn.data.get("profiles", {}) or ()))
    profiles = {}
    for pname in profiles_table.data:
        p = profiles_table.table(pname, ("command", "wait_for"))
        profiles[pname] = Profile(
            command=p.get("command", _argv, ()) or _missing(p, "command"),
            wait_for=p.get("wait_for", _opt_regex, None),
        )
    default_profile = spawn.get("default_profile", _opt_str, None)
    if default_profile is not None and default_profile not in profiles:
        raise ConfigError(f"'spawn.default_profile' names no [spawn.profiles.{default_profile}]")

    boot = top.table("boot", ("sessions", "restore"))
    raw_sessions = boot.data.get("sessions", [])
    if not isinstance(raw_sessions, list):
        raise ConfigError("'boot.sessions' must be an array of tables ([[boot.sessions]])")
    sessions = []
    for i, raw in enumerate(raw_sessions):
        where = f"boot.sessions[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"'{where}' must be a table")
        s = _Table(raw, where, ("name", "command", "wait_for", "socket_name"))
        sessions.append(
            BootSession(
                name=s.get("name", _nonempty_str, "") or _missing(s, "name"),
                command=s.get("command", _argv, ()) or _missing(s, "command"),
                wait_for=s.get("wait_for", _opt_regex, None),
                socket_name=s.get("socket_name", _opt_str, None),
            )
        )

    telegram = top.table("telegram", ("token_file", "chat_id", "api_url", "timeout"))
    bot = top.table(
        "bot", ("allowed_user_ids", "allowed_chat_ids", "max_command_age", "spawns_per_minute")
    )
    health = top.table("health", ("timeout", "parallel"))

    return Config(
        path=path,
        socket_dirs=top.get("socket_dirs", _dir_list, defaults.socket_dirs),
        protected_sockets=top.get("protected_sockets", _str_list, defaults.protected_sockets),
        sweep=SweepConfig(
            timeout=sweep.get("timeout", _seconds, defaults.sweep.timeout),
            notify=sweep.get("notify", _policy, defaults.sweep.notify),
        ),
        spawn=SpawnConfig(
            ready_timeout=spawn.get("ready_timeout", _seconds, defaults.spawn.ready_timeout),
            default_profile=default_profile,
            profiles=profiles,
        ),
        boot=BootConfig(sessions=tuple(sessions), restore=boot.get("restore", _bool, False)),
        telegram=TelegramConfig(
            token_file=telegram.get("token_file", _opt_path, None),
            chat_id=telegram.get("chat_id", _chat_id, None),
            api_url=telegram.get("api_url", _opt_str, None),
            timeout=telegram.get("timeout", _seconds, defaults.telegram.timeout),
        ),
        bot=BotConfig(
            allowed_user_ids=bot.get("allowed_user_ids", _id_list, ()),
            allowed_chat_ids=bot.get("allowed_chat_ids", _id_list, ()),
            max_command_age=bot.get("max_command_age", _seconds, defaults.bot.max_command_age),
            spawns_per_minute=bot.get("spawns_per_minute", _count, defaults.bot.spawns_per_minute),
        ),
        health=HealthConfig(
            timeout=health.get("timeout", _seconds, defaults.health.timeout),
            parallel=health.get("parallel", _count, defaults.health.parallel),
        ),
    )


def _missing(table: _Table, key: str) -> Any:
    raise ConfigError(f"'{_join(table.where, key)}' is required")


def load(path: str | None = None) -> Config:
    """Read the config. `path` None means the default path, where a missing file is fine."""
    explicit = path is not None
    target = path if path is not None else default_config_path()
    try:
        with open(target, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file not found: {target}") from None
        return Config()
    except IsADirectoryError:
        raise ConfigError(f"config file is a directory: {target}") from None
    except OSError as exc:
        raise ConfigError(f"config file not readable: {target}: {exc.strerror or exc}") from None

    import tomllib  # noqa: PLC0415 - only paid when a config file exists

    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{target}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{target}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{target}: not valid TOML: {_too_deep(text)}") from None
    try:
        return parse(data, os.path.abspath(target))
    except ConfigError as exc:
        raise ConfigError(f"{target}: {exc}") from None


def _too_deep(text: str) -> str:
    """Name the key whose value is nested too deeply (tomllib's RecursionError names nothing)."""
    import re  # noqa: PLC0415 - only a broken file pays for re

    deep = re.search(_DEEP_NESTING, text)
    if deep is None:
        return "a value is nested too deeply"
    line = text.count("\n", 0, deep.start()) + 1
    keys = list(re.finditer(_KEY_LINE, text[: deep.start()]))
    if not keys:
        return f"a value is nested too deeply (line {line})"
    key = keys[-1]
    tables = list(re.finditer(_TABLE_LINE, text[: key.start()]))
    table = tables[-1].group(1).replace(" ", "") if tables else ""
    name = _join(table, key.group(1).strip())
    return f"'{name}' is nested too deeply (line {line})"
