"""Completion of session names (forge_tmux.cli.complete) against real tmux servers: the names of
running spawned sessions only, filtered by what was typed, and read-only (a stale socket is not
brought back, a stopped server costs a bounded wait)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from forge_tmux.cli import complete
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux, tmux_server_pids

pytestmark = needs_tmux


def test_session_names(tmux_env: TmuxEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMUX_TMPDIR", tmux_env.root)
    tmux_env.start("spawn-alpha", session="alpha")
    tmux_env.start("spawn-alps", session="alps")
    tmux_env.start("homebase", session="home")  # not spawned: attach/peek/kill NAME skip it
    stale = tmux_env.stale("spawn-gone")
    stopped = tmux_env.start("spawn-stuck", session="stuck")
    os.kill(stopped.pid, signal.SIGSTOP)
    servers = tmux_server_pids(tmux_env)

    started = time.monotonic()
    assert complete.session_names("") == ["alpha", "alps"]
    assert time.monotonic() - started < complete.BUDGET_S + 1
    assert complete.session_names("alph") == ["alpha"]
    assert complete.session_names("zz") == []

    assert os.path.exists(stale)  # read-only: the stale socket is left for the sweep
    assert tmux_server_pids(tmux_env) == servers  # and no server was started on it


def test_no_directory_no_names(tmp_path: os.PathLike[str]) -> None:
    assert complete.spawned_sockets(os.path.join(os.fspath(tmp_path), "missing")) == []


APP = """
from typing import Annotated

import typer

from forge_tmux.cli import complete

app = typer.Typer()


@app.command()
def attach(name: Annotated[str, typer.Argument(autocompletion=complete.session_names)]) -> None:
    print(name)


@app.command()
def other() -> None:
    pass


app(prog_name="ftc")
"""


def test_through_the_shell_protocol(tmux_env: TmuxEnv) -> None:
    """How attach/peek/kill use it: bash's completion request answers with the session names."""
    tmux_env.start("spawn-alpha", session="alpha")
    tmux_env.start("spawn-beta", session="beta")
    env = {**tmux_env.env, "_FTC_COMPLETE": "complete_bash", "COMP_CWORD": "2"}
    result = subprocess.run(
        [sys.executable, "-c", APP],
        env={**env, "COMP_WORDS": "ftc attach al"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["alpha"]
