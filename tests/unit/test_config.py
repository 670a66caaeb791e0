"""Config parsing (pure: no sockets; a file only where `load` itself is the subject)."""

from __future__ import annotations

import math
import os

import pytest

from forge_tmux.config import BootSession, Config, Profile, load, parse
from forge_tmux.errors import ConfigError


def test_empty_document_is_the_defaults() -> None:
    cfg = parse({})
    assert cfg == Config()
    assert cfg.protected_sockets == ("homebase",)
    assert cfg.sweep.timeout == 2.0
    assert cfg.sweep.notify == "changes"
    assert cfg.bot.allowed_user_ids == ()


def test_full_document() -> None:
    cfg = parse(
        {
            "socket_dirs": ["/run/tmux"],
            "protected_sockets": ["homebase", "ops"],
            "sweep": {"timeout": 1, "notify": "never"},
            "spawn": {
                "ready_timeout": 5,
                "default_profile": "claude",
                "profiles": {"claude": {"command": ["claude", "--resume"], "wait_for": ">"}},
            },
            "boot": {"sessions": [{"name": "agent", "command": ["bash"], "socket_name": "a"}]},
            "telegram": {"chat_id": 1111, "token_file": "/etc/tok", "timeout": 5},
            "bot": {"allowed_user_ids": [1, 2], "spawns_per_minute": 3},
            "health": {"timeout": 0.5, "parallel": 8},
        }
    )
    assert cfg.socket_dirs == ("/run/tmux",)
    assert cfg.sweep.timeout == 1.0
    assert cfg.spawn.profiles == {"claude": Profile(("claude", "--resume"), ">")}
    assert cfg.boot.sessions == (BootSession("agent", ("bash",), None, "a"),)
    assert cfg.telegram.chat_id == "1111"
    assert cfg.bot.allowed_user_ids == (1, 2)
    assert cfg.health.parallel == 8


def test_socket_dirs_expand_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/op")
    assert parse({"socket_dirs": ["~/tmux", "/srv/t"]}).socket_dirs == ("/home/op/tmux", "/srv/t")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"x": 1}, "unknown key 'x'"),
        ({"sweep": 3}, "'sweep' must be a table"),
        ({"sweep": {"notify": "sometimes"}}, "'sweep.notify' must be one of"),
        ({"bot": {"allowed_user_ids": ["1"]}}, "'bot.allowed_user_ids' must be a list of integer"),
        ({"bot": {"allowed_user_ids": [True]}}, "'bot.allowed_user_ids' must be a list of integer"),
        ({"health": {"parallel": 0}}, "'health.parallel' must be a whole number"),
        ({"boot": {"sessions": {"name": "x"}}}, "'boot.sessions' must be an array"),
        (
            {"boot": {"sessions": [{"name": "x", "command": ["a"], "nme": 1}]}},
            "boot.sessions[0].nme",
        ),
        ({"spawn": {"profiles": {"p": {"command": "bash -l"}}}}, "'spawn.profiles.p.command'"),
        ({"spawn": {"profiles": {"p": {}}}}, "'spawn.profiles.p.command' is required"),
        ({"telegram": {"chat_id": ""}}, "'telegram.chat_id' must not be empty"),
        ({"socket_dirs": [""]}, "'socket_dirs' must not contain an empty path"),
    ],
)
def test_errors_name_the_key(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(doc)
    assert message in str(err.value)


DURATION_KEYS = [
    ("sweep", "timeout"),
    ("spawn", "ready_timeout"),
    ("telegram", "timeout"),
    ("bot", "max_command_age"),
    ("health", "timeout"),
]


@pytest.mark.parametrize(("table", "key"), DURATION_KEYS)
@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 1e308, 86_400.5, 10**30, 0, -1, True, "2"]
)
def test_every_duration_key_is_bounded(table: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        parse({table: {key: value}})
    assert f"'{table}.{key}' must be a positive number of seconds" in str(err.value)


@pytest.mark.parametrize(("table", "key"), DURATION_KEYS)
def test_a_day_is_the_longest_duration(table: str, key: str) -> None:
    cfg = parse({table: {key: 86_400}})
    assert getattr(getattr(cfg, table), key) == 86_400.0


def test_every_path_key_expands_the_home_directory_at_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", "/home/op")
    cfg = parse({"socket_dirs": ["~/tmux"], "telegram": {"token_file": "~/.config/t/token"}})
    assert cfg.socket_dirs == ("/home/op/tmux",)
    assert cfg.telegram.token_file == "/home/op/.config/t/token"
    root_home = os.path.expanduser("~root")
    assert parse({"telegram": {"token_file": "~root/t"}}).telegram.token_file == f"{root_home}/t"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"telegram": {"token_file": "token"}}, "'telegram.token_file' must be an absolute path"),
        ({"telegram": {"token_file": ""}}, "'telegram.token_file' must not be an empty path"),
        ({"socket_dirs": ["tmux"]}, "'socket_dirs' must be an absolute path"),
        ({"socket_dirs": ["~nosuchuser-ftx/t"]}, "'socket_dirs' must be an absolute path"),
        ({"socket_dirs": ["/tmp/a\0b"]}, "'socket_dirs' must not contain a NUL character"),
        ({"telegram": {"token_file": "/a\0b"}}, "'telegram.token_file' must not contain a NUL"),
        ({"protected_sockets": ["a\0"]}, "'protected_sockets' must not contain a NUL"),
        (
            {"spawn": {"profiles": {"p": {"command": ["sh", "-c\0"]}}}},
            "'spawn.profiles.p.command' must not contain a NUL",
        ),
        ({"telegram": {"chat_id": [1]}}, "'telegram.chat_id' must be a string or an integer"),
    ],
)
def test_path_and_string_rules_name_the_key(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(doc)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", "'x' is nested too deeply (line 1)"),
        (
            "[telegram]\nchat_id = 1\nbad = " + "[" * 5000 + "\n",
            "'telegram.bad' is nested too deeply (line 3)",
        ),
        ("[spawn]\nx = " + "{a = " * 5000 + "\n", "'spawn.x' is nested too deeply (line 2)"),
    ],
)
def test_deeply_nested_values_are_a_config_error(
    tmp_path: os.PathLike[str], text: str, message: str
) -> None:
    path = os.path.join(tmp_path, "deep.toml")
    with open(path, "w") as fh:
        fh.write(text)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value) == f"{path}: not valid TOML: {message}"
