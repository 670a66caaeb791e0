"""Bad input: one clear line on stderr, exit 2, never a traceback, nothing touched."""

from __future__ import annotations

import os

import pytest
from conftest import TmuxEnv, run_cli


def one_line_error(result) -> str:
    assert result.code == 2, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("forge-tmux: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sweep", "--timeout", "abc"], "--timeout"),
        (["sweep", "--timeout", "0"], "--timeout must be a positive number"),
        (["sweep", "--timeout", "-1"], "--timeout must be a positive number"),
        (["sweep", "--timeout", "nan"], "--timeout must be a positive number"),
        (["sweep", "--bogus"], "--bogus"),
        (["sweep", "--dir", ""], "--dir must not be empty"),
        (["no-such-command"], "no-such-command"),
    ],
)
def test_bad_options(tmux_env: TmuxEnv, args: list[str], expected: str) -> None:
    stale = tmux_env.fake_stale("s")
    line = one_line_error(run_cli(*args, env=tmux_env.env))
    assert expected in line
    assert os.path.exists(stale)  # a rejected command touches nothing


CONFIGS = {
    "unknown key": ("soket_dirs = []\n", "unknown key 'soket_dirs'"),
    "unknown nested key": ("[sweep]\ntimeot = 3\n", "unknown key 'sweep.timeot'"),
    "wrong type": ('protected_sockets = "homebase"\n', "'protected_sockets' must be a list"),
    "bad number": ("[sweep]\ntimeout = -2\n", "'sweep.timeout' must be a positive number"),
    "bool is not a number": ("[sweep]\ntimeout = true\n", "'sweep.timeout' must be a positive"),
    "not toml": ("socket_dirs = [\n", "not valid TOML"),
    "not utf-8": (b"socket_dirs = ['\xff']\n", "not valid UTF-8"),
    "bad regex": (
        '[spawn.profiles.x]\ncommand = ["sh"]\nwait_for = "("\n',
        "'spawn.profiles.x.wait_for' is not a valid regular expression",
    ),
    "empty argv": ("[spawn.profiles.x]\ncommand = []\n", "'spawn.profiles.x.command'"),
    "session without name": (
        '[[boot.sessions]]\ncommand = ["sh"]\n',
        "'boot.sessions[0].name' is required",
    ),
    "default profile missing": (
        '[spawn]\ndefault_profile = "nope"\n',
        "'spawn.default_profile' names no [spawn.profiles.nope]",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_broken_config(tmux_env: TmuxEnv, case: str) -> None:
    text, expected = CONFIGS[case]
    path = os.path.join(tmux_env.root, "config.toml")
    with open(path, "wb") as fh:
        fh.write(text if isinstance(text, bytes) else text.encode())
    stale = tmux_env.fake_stale("s")
    line = one_line_error(run_cli("--config", path, "sweep", env=tmux_env.env))
    assert expected in line
    assert path in line
    assert os.path.exists(stale)


def test_broken_config_at_default_path_is_also_an_error(tmux_env: TmuxEnv) -> None:
    cfg_dir = os.path.join(tmux_env.env["XDG_CONFIG_HOME"], "forge-tmux")
    os.makedirs(cfg_dir)
    with open(os.path.join(cfg_dir, "config.toml"), "w") as fh:
        fh.write("nonsense = 1\n")
    line = one_line_error(run_cli("sweep", env=tmux_env.env))
    assert "unknown key 'nonsense'" in line


def test_missing_explicit_config_file(tmux_env: TmuxEnv) -> None:
    missing = os.path.join(tmux_env.root, "nope.toml")
    line = one_line_error(run_cli("--config", missing, "sweep", env=tmux_env.env))
    assert line == f"forge-tmux: error: config file not found: {missing}"


def test_missing_default_config_means_defaults(tmux_env: TmuxEnv) -> None:
    assert run_cli("sweep", env=tmux_env.env).code == 0


def test_valid_config_adds_socket_dirs(tmux_env: TmuxEnv) -> None:
    extra = os.path.join(tmux_env.root, "extra")
    os.mkdir(extra, 0o700)
    stale = tmux_env.fake_stale("s", extra)
    path = os.path.join(tmux_env.root, "config.toml")
    with open(path, "w") as fh:
        fh.write(f'socket_dirs = ["{extra}"]\n')
    result = run_cli("--config", path, "sweep", "--json", env=tmux_env.env)
    assert result.code == 0, result.err
    assert [d["path"] for d in result.json()["dirs"]] == [tmux_env.sockdir, extra]
    assert not os.path.lexists(stale)


def test_version_and_help(tmux_env: TmuxEnv) -> None:
    version = run_cli("--version", env=tmux_env.env)
    assert version.code == 0
    assert version.out.startswith("forge-tmux ")
    helped = run_cli("sweep", "--help", env=tmux_env.env)
    assert helped.code == 0
    assert "--dry-run" in helped.out
