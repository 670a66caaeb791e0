"""`forge-tmux post-boot`: the [[boot.sessions]] of the config, each on its own socket."""

from __future__ import annotations

import os

import pytest

from forge_tmux import postboot
from forge_tmux.config import BootConfig, BootSession, Config
from forge_tmux.errors import UsageError
from forge_tmux.spawn import Outcome
from forge_tmux_testing.cli import Cli
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux

pytestmark = needs_tmux


CONFIG = """
[spawn]
ready_timeout = 5

[[boot.sessions]]
name = "agent"
command = ["sh", "-c", "echo READY; sleep 100000"]
wait_for = "^READY$"

[[boot.sessions]]
name = "logs.tail"
command = ["sleep", "100000"]

[[boot.sessions]]
name = "shared"
command = ["sleep", "100000"]
socket_name = "fleet"
"""


def write_config(env: TmuxEnv, text: str) -> str:
    path = os.path.join(env.root, "config.toml")
    with open(path, "w") as fh:
        fh.write(text)
    return path


def statuses(data: dict[str, object]) -> dict[str, tuple[str, str]]:
    sessions = data["sessions"]
    assert isinstance(sessions, list)
    return {s["session"]: (s["status"], s["socket_name"]) for s in sessions}


def test_post_boot_spawns_each_session_on_its_own_socket(tmux_env: TmuxEnv, cli: Cli) -> None:
    config = write_config(tmux_env, CONFIG)
    first = cli("--config", config, "post-boot", "--json")
    assert first.code == 0, first.err
    data = first.json()
    assert data["ok"] is True
    assert statuses(data) == {
        "agent": ("spawned", "spawn-agent"),
        "logs-tail-f42be543": ("spawned", "spawn-logs-tail-f42be543"),
        "shared": ("spawned", "fleet"),
    }
    assert data["summary"] == "post-boot: 3 started, 0 already running, 0 failed"
    # Never the shared default socket.
    assert sorted(os.listdir(tmux_env.sockdir)) == [
        "fleet",
        "spawn-agent",
        "spawn-logs-tail-f42be543",
    ]
    # Run twice (a restart of the oneshot): reported, not an error, nothing replaced.
    pid = tmux_env.tmux("-L", "spawn-agent", "display-message", "-p", "#{pid}").stdout
    again = cli("--config", config, "post-boot")
    assert again.code == 0, again.err
    assert again.out.splitlines()[-1] == "post-boot: 0 started, 3 already running, 0 failed"
    assert again.out.count("already_running") == 3
    assert tmux_env.tmux("-L", "spawn-agent", "display-message", "-p", "#{pid}").stdout == pid


def test_post_boot_failure_is_exit_1_and_the_others_still_start(
    tmux_env: TmuxEnv, cli: Cli
) -> None:
    config = write_config(
        tmux_env,
        '[[boot.sessions]]\nname = "broken"\ncommand = ["/nonexistent/agent"]\n'
        '[[boot.sessions]]\nname = "fine"\ncommand = ["sleep", "100000"]\n',
    )
    result = cli("--config", config, "post-boot", "--json")
    assert result.code == 1
    data = result.json()
    assert data["ok"] is False
    assert statuses(data) == {
        "broken": ("failed", "spawn-broken"),
        "fine": ("spawned", "spawn-fine"),
    }
    human = cli("--config", config, "post-boot")
    assert human.code == 1
    assert "failed" in human.out
    assert "command not found or not executable: /nonexistent/agent" in human.out


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('socket_name = "default"', "shared default socket"),
        ('socket_name = "homebase"', "protected"),
        ('socket_name = "a/b"', "only letters"),
        ('wait_for = "("', "not a valid regular expression"),
    ],
)
def test_bad_entry_is_exit_2_before_anything_starts(
    tmux_env: TmuxEnv, cli: Cli, entry: str, problem: str
) -> None:
    config = write_config(
        tmux_env,
        '[[boot.sessions]]\nname = "first"\ncommand = ["sleep", "100000"]\n'
        f'[[boot.sessions]]\nname = "second"\ncommand = ["sleep", "100000"]\n{entry}\n',
    )
    result = cli("--config", config, "post-boot")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert problem in result.err
    assert not os.path.exists(tmux_env.path("spawn-first"))


def test_two_entries_for_the_same_session_are_refused() -> None:
    entries = (BootSession("a.b", ("x",)), BootSession("a.b", ("y",)))
    cfg = Config(boot=BootConfig(sessions=entries))
    with pytest.raises(UsageError, match=r"boot.sessions\[1\] \('a.b'\) is the same session"):
        postboot.requests(cfg, socket_dir="/tmp/tmux-0")


def test_no_boot_sessions_is_a_quiet_success(cli: Cli) -> None:
    result = cli("post-boot", "--json")
    assert result.code == 0
    assert result.json() == {
        "ok": True,
        "sessions": [],
        "summary": "post-boot: 0 started, 0 already running, 0 failed",
    }


def test_post_boot_returns_typed_results_for_boot(
    tmux_env: TmuxEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMUX_TMPDIR", tmux_env.root)
    cfg = Config(boot=BootConfig(sessions=(BootSession("svc", ("sleep", "100000")),)))
    result = postboot.post_boot(cfg)
    assert result.ok
    assert [(s.session, s.outcome) for s in result.sessions] == [("svc", Outcome.SPAWNED)]
    assert postboot.post_boot(cfg).sessions[0].outcome is Outcome.ALREADY_RUNNING
