"""Bad input: one clear line on stderr, exit 2, never a traceback, nothing touched."""

from __future__ import annotations

import os

import pytest

from forge_tmux_testing.cli import CliResult, run_cli
from forge_tmux_testing.tmux_world import TmuxEnv


def one_line_error(result: CliResult) -> str:
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


CONFIGS: dict[str, tuple[str | bytes, str]] = {
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


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e308", "86401"])
@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--timeout"],
        ["health", "--timeout"],
        ["recover", "--dry-run", "--timeout"],
        ["spawn", "ftx-never", "--ready-timeout"],
    ],
)
def test_durations_on_the_command_line_are_bounded(
    tmux_env: TmuxEnv, args: list[str], value: str
) -> None:
    stale = tmux_env.fake_stale("s")
    line = one_line_error(run_cli(*args, value, env=tmux_env.env))
    assert f"{args[-1]} must be a positive number of seconds, at most 86400" in line
    assert os.path.exists(stale)
    assert not os.path.exists(tmux_env.path("spawn-ftx-never"))


def write_config(env: TmuxEnv, text: str) -> str:
    path = os.path.join(env.root, "config.toml")
    with open(path, "w") as fh:
        fh.write(text)
    return path


@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "-inf"])
@pytest.mark.parametrize(
    ("key", "command"),
    [
        ("sweep.timeout", ["sweep"]),
        ("health.timeout", ["health"]),
        ("spawn.ready_timeout", ["spawn", "ftx-never"]),
        ("health.timeout", ["spawn", "ftx-never"]),
        ("telegram.timeout", ["notify", "hello"]),
        ("bot.max_command_age", ["bot"]),
    ],
)
def test_durations_in_the_config_are_bounded(
    tmux_env: TmuxEnv, key: str, command: list[str], value: str
) -> None:
    """health.timeout = 1e308 was an OverflowError traceback; a spawn crashed that way after
    its session had started (exit 1). Now nothing starts."""
    table, name = key.split(".")
    path = write_config(tmux_env, f"[{table}]\n{name} = {value}\n")
    stale = tmux_env.fake_stale("s")
    line = one_line_error(run_cli("--config", path, *command, env=tmux_env.env, timeout=30))
    assert f"'{key}' must be a positive number of seconds, at most 86400" in line
    assert os.path.exists(stale)
    assert not os.path.exists(tmux_env.path("spawn-ftx-never"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("socket_dirs = " + "[" * 5000 + "\n", "'socket_dirs' is nested too deeply"),
        ('socket_dirs = ["/tmp/x\\u0000y"]\n', "'socket_dirs' must not contain a NUL character"),
        (
            '[telegram]\ntoken_file = "/etc/t\\u0000k"\n',
            "'telegram.token_file' must not contain a NUL character",
        ),
        ("[telegram]\nchat_id = [1]\n", "'telegram.chat_id' must be a string or an integer"),
        ('[telegram]\ntoken_file = "token"\n', "'telegram.token_file' must be an absolute path"),
    ],
)
@pytest.mark.parametrize(
    "command", [["sweep"], ["doctor"], ["notify", "hi"], ["units", "render", "--out", "OUT"]]
)
def test_config_edges_are_one_line(
    tmux_env: TmuxEnv, text: str, expected: str, command: list[str]
) -> None:
    path = write_config(tmux_env, text)
    stale = tmux_env.fake_stale("s")
    out = os.path.join(tmux_env.root, "out")
    command = [out if word == "OUT" else word for word in command]
    result = run_cli("--config", path, *command, env=tmux_env.env, timeout=30)
    if command == ["doctor"]:  # doctor reports a bad config as a failed check, never a crash
        assert result.code == 1, (result.out, result.err)
        assert "Traceback" not in result.err
        assert expected in result.out
    else:
        assert expected in one_line_error(result)
    assert os.path.exists(stale)
    assert not os.path.exists(out)


def test_health_with_a_named_dir_that_does_not_exist_is_not_ok(tmux_env: TmuxEnv) -> None:
    """A typo in a monitoring command must not stay green."""
    typo = os.path.join(tmux_env.root, "tmux-typo")
    checked = run_cli("health", "--check", "--dir", typo, env=tmux_env.env)
    assert checked.code == 1, (checked.out, checked.err)
    assert f"--dir {typo} does not exist" in checked.err
    nagios = run_cli("health", "--format", "nagios", "--dir", typo, env=tmux_env.env)
    assert nagios.code == 3, (nagios.out, nagios.err)
    assert nagios.out.startswith("TMUX UNKNOWN")
    prometheus = run_cli("health", "--format", "prometheus", "--dir", typo, env=tmux_env.env)
    assert "forge_tmux_health_complete 0" in prometheus.out
    # Present but empty is fine; so is the default directory being absent (no tmux used yet).
    ok = run_cli(
        "health", "--check", "--format", "nagios", "--dir", tmux_env.sockdir, env=tmux_env.env
    )
    assert ok.code == 0, (ok.out, ok.err)
    os.rmdir(tmux_env.sockdir)
    assert run_cli("health", "--check", env=tmux_env.env).code == 0
    assert run_cli("health", "--format", "nagios", env=tmux_env.env).code == 0


def test_units_install_failure_is_an_error_line_on_stderr(tmux_env: TmuxEnv) -> None:
    env = {**tmux_env.env, "HOME": tmux_env.root, "XDG_RUNTIME_DIR": tmux_env.root}
    result = run_cli("units", "install", env=env)
    assert result.code == 1, (result.out, result.err)
    assert "error" not in result.out
    errors = [line for line in result.err.splitlines() if "error" in line]
    assert len(errors) == 1, result.err
    assert errors[0].startswith("forge-tmux: error: ")
