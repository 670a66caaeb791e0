"""Config parsing (pure: no files, no sockets)."""

from __future__ import annotations

import pytest

from forge_tmux.config import BootSession, Config, Profile, parse
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
