"""Completion of session names (forge_tmux.cli.complete) against real tmux servers: the names of
running spawned sessions only, filtered by what was typed, and read-only (a stale socket is not
brought back, a stopped server costs a bounded wait)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import TmuxEnv, needs_tmux, tmux_server_pids

from forge_tmux.cli import complete

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
