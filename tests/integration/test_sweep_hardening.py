"""Files that are not tmux's are never deleted, and a stale socket that stays is a failure.

tmux's lock files are empty and never written: a `*.lock` with content (a pidfile, notes) or one
that is not a regular file of ours is someone else's, left alone and reported as skipped. A stale
socket that could not be removed (an immutable directory, a read-only mount) makes the sweep exit
1: the timer must not report success while the poison stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from forge_tmux_testing.cli import CliResult
from forge_tmux_testing.processes import needs_root
from forge_tmux_testing.tmux_world import TmuxEnv, make_stale_socket


def by_path(result_json: dict[str, object]) -> dict[str, dict[str, Any]]:
    sockets = result_json["sockets"]
    assert isinstance(sockets, list)
    return {os.path.basename(s["path"]): s for s in sockets}


def test_a_lock_file_with_content_is_never_deleted(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    notes = tmux_env.path("notes.lock")
    with open(notes, "w") as fh:
        fh.write("precious\n")
    result = cli("sweep", "--json")
    assert result.code == 0, result.err
    with open(notes) as fh:
        assert fh.read() == "precious\n"
    entry = by_path(result.json())["notes.lock"]
    assert entry["state"] == "skipped"
    assert "not empty" in str(entry["reason"])
    assert result.json()["summary"]["locks_removed"] == 0


def test_a_pidfile_beside_a_stale_socket_stays_and_the_socket_goes(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    """`build.lock` with a pid in it beside a stale socket `build`: the socket is removed under
    the lock (flocking the file changes nothing in it); the file is kept and reported."""
    sock = tmux_env.path("build")
    make_stale_socket(sock)
    with open(sock + ".lock", "w") as fh:
        fh.write("4242\n")
    result = cli("sweep", "--json")
    assert result.code == 0, result.err
    assert not os.path.lexists(sock)
    with open(sock + ".lock") as fh:
        assert fh.read() == "4242\n"
    entries = by_path(result.json())
    assert entries["build"]["removed"] is True
    assert entries["build.lock"]["state"] == "skipped"


def test_lock_names_that_are_not_regular_files_are_left_and_reported(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    os.mkfifo(tmux_env.path("pipe.lock"), 0o600)
    os.mkdir(tmux_env.path("dir.lock"), 0o700)
    os.symlink("/etc/hostname", tmux_env.path("link.lock"))
    # A stale socket whose lock name is a fifo: never opened (that could block or have effects).
    sock = tmux_env.path("s")
    make_stale_socket(sock)
    os.mkfifo(sock + ".lock", 0o600)
    result = cli("sweep", "--json")
    assert result.code == 0, result.err
    entries = by_path(result.json())
    for name in ("pipe.lock", "dir.lock", "link.lock", "s"):
        assert entries[name]["state"] == "skipped", entries
        assert entries[name]["removed"] is False
    assert sorted(os.listdir(tmux_env.sockdir)) == [
        "dir.lock",
        "link.lock",
        "pipe.lock",
        "s",
        "s.lock",
    ]


def sweep_in_read_only_mount(
    env: dict[str, str], directory: str
) -> subprocess.CompletedProcess[str]:
    """`forge-tmux sweep --json` inside a private mount namespace in which `directory` is a
    read-only bind mount of itself; the mount ends with the namespace, also on failure."""
    script = (
        "import os, subprocess, sys\n"
        "d = sys.argv[1]\n"
        "subprocess.run(['mount', '--bind', '-o', 'ro', d, d], check=True)\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'forge_tmux', 'sweep', '--json'])\n"
    )
    unshare = shutil.which("unshare") or "unshare"
    return subprocess.run(
        [unshare, "-m", "--propagation", "private", sys.executable, "-c", script, directory],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )


@needs_root
@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare is not installed")
def test_a_read_only_mount_that_keeps_a_stale_socket_exits_1(tmux_env: TmuxEnv) -> None:
    sock = tmux_env.path("s")
    make_stale_socket(sock)
    proc = sweep_in_read_only_mount(tmux_env.env, tmux_env.sockdir)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    (entry,) = json.loads(proc.stdout)["sockets"]
    assert entry["state"] == "stale" and entry["removed"] is False, entry
    assert "cannot open lock file" in entry["reason"]
    assert os.path.lexists(sock)  # the mount was private: nothing outside it changed
    assert os.listdir(tmux_env.sockdir) == ["s"]


@contextlib.contextmanager
def immutable(path: str) -> Iterator[None]:
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", path], check=False).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        yield
    finally:
        assert chattr is not None
        subprocess.run([chattr, "-i", path], check=True)


@needs_root
def test_an_immutable_directory_that_keeps_a_stale_socket_exits_1(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    sock = tmux_env.path("s")
    make_stale_socket(sock)
    with immutable(tmux_env.sockdir):
        result = cli("sweep", "--json")
    assert result.code == 1, (result.out, result.err)
    (entry,) = result.json()["sockets"]
    assert entry["state"] == "stale" and entry["removed"] is False, entry
    assert "Operation not permitted" in entry["reason"]
    assert os.path.lexists(sock)
