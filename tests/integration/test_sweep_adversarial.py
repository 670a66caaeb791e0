"""Entries a janitor must never remove wrongly: each reported with its reason, no traceback."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from typing import Any

from forge_tmux import probe, sockdir
from forge_tmux import sweep as core
from forge_tmux_testing.cli import CliResult
from forge_tmux_testing.processes import as_user, needs_root
from forge_tmux_testing.tmux_world import TmuxEnv, make_stale_socket, needs_tmux

NOBODY = 65534


def entries(report: dict[str, object]) -> dict[str, dict[str, Any]]:
    sockets = report["sockets"]
    assert isinstance(sockets, list)
    return {os.path.basename(s["path"]): s for s in sockets}


@needs_tmux
def test_adversarial_entries_in_one_directory(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    d = tmux_env.sockdir
    elsewhere = os.path.join(tmux_env.root, "elsewhere")
    os.mkdir(elsewhere, 0o700)
    outside_stale = tmux_env.fake_stale("target", elsewhere)
    os.symlink(outside_stale, os.path.join(d, "link-to-stale"))
    os.symlink(os.path.join(tmux_env.root, "nothing-here"), os.path.join(d, "dangling"))
    with open(os.path.join(d, "regular"), "w") as fh:
        fh.write("keep me")
    os.mkfifo(os.path.join(d, "fifo"))
    os.mkdir(os.path.join(d, "subdir"))
    theirs = tmux_env.fake_stale("theirs")
    os.chown(theirs, NOBODY, NOBODY) if os.geteuid() == 0 else None
    ours_stale = tmux_env.fake_stale("ours")
    live = tmux_env.start("live")

    result = cli("sweep", "--json")

    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    seen = entries(result.json())
    assert seen["link-to-stale"]["state"] == "skipped"
    assert "symlink" in seen["link-to-stale"]["reason"]
    assert seen["dangling"]["state"] == "skipped"
    assert seen["regular"]["reason"] == "not a socket (regular file)"
    assert seen["fifo"]["reason"] == "not a socket (fifo)"
    assert seen["subdir"]["reason"] == "not a socket (directory)"
    assert seen["ours"]["removed"] is True
    assert seen["live"]["state"] == "live"
    # Everything but our own stale socket is still there, untouched.
    assert os.path.islink(os.path.join(d, "link-to-stale"))
    assert os.path.exists(outside_stale)  # the symlink's target, outside: never followed
    assert os.path.islink(os.path.join(d, "dangling"))
    with open(os.path.join(d, "regular")) as fh:
        assert fh.read() == "keep me"
    assert stat.S_ISFIFO(os.lstat(os.path.join(d, "fifo")).st_mode)
    assert os.path.isdir(os.path.join(d, "subdir"))
    assert not os.path.lexists(ours_stale)
    assert tmux_env.answers(live)
    if os.geteuid() == 0:
        assert seen["theirs"]["state"] == "skipped"
        assert seen["theirs"]["reason"] == f"owned by uid {NOBODY}, not ours"
        assert os.path.exists(theirs)


@needs_tmux
def test_unsafe_directory_is_refused_and_untouched(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    stale = tmux_env.stale("crashed")
    os.chmod(tmux_env.sockdir, 0o770)
    result = cli("sweep", "--json")
    assert result.code == 1
    report = result.json()
    assert report["dirs"][0]["status"] == "refused"
    assert "group/other" in report["dirs"][0]["reason"]
    assert report["sockets"] == []
    assert os.path.exists(stale)
    assert "refused" in result.err


def test_symlinked_directory_is_refused(tmux_env: TmuxEnv, cli: Callable[..., CliResult]) -> None:
    real = os.path.join(tmux_env.root, "real")
    os.mkdir(real, 0o700)
    stale = tmux_env.fake_stale("s", real)
    link = os.path.join(tmux_env.root, "linked")
    os.symlink(real, link)
    result = cli("sweep", "--json", "--dir", link)
    assert result.code == 1
    assert result.json()["dirs"][0]["status"] == "refused"
    assert "symlink" in result.json()["dirs"][0]["reason"]
    assert os.path.exists(stale)


@needs_root
def test_directory_of_another_user_is_refused(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    other = os.path.join(tmux_env.root, "tmux-65534")
    os.mkdir(other, 0o700)
    stale = tmux_env.fake_stale("s", other)
    os.chown(other, NOBODY, NOBODY)
    result = cli("sweep", "--json", "--dir", other)
    assert result.code == 1
    assert result.json()["dirs"][0]["reason"] == f"owned by uid {NOBODY}, not ours"
    assert os.path.exists(stale)


def test_missing_directory_is_nothing_to_do(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    missing = os.path.join(tmux_env.root, "nope")
    result = cli("sweep", "--json", "--dir", missing)
    assert result.code == 0
    assert result.json()["dirs"] == [
        {"path": missing, "status": "missing", "reason": "does not exist"}
    ]


@needs_root
def test_unreadable_directory_is_refused(tmux_env: TmuxEnv) -> None:
    """Root reads everything, so the sweep runs as an ordinary user whose directory is 0000."""
    home = os.path.join(tmux_env.root, "nobody")
    os.mkdir(home, 0o755)
    sockdir = os.path.join(home, f"tmux-{NOBODY}")
    os.mkdir(sockdir, 0o700)
    stale = tmux_env.fake_stale("s", sockdir)
    os.chown(stale, NOBODY, NOBODY)
    os.chown(sockdir, NOBODY, NOBODY)
    os.chmod(sockdir, 0o000)

    report = as_user(NOBODY, lambda: core.sweep([sockdir]).to_json())

    assert report["dirs"][0]["status"] == "refused"
    assert "Permission denied" in report["dirs"][0]["reason"]
    assert os.path.exists(stale)


@needs_root
def test_other_users_stale_socket_in_shared_dir_as_that_user(tmux_env: TmuxEnv) -> None:
    """Run as an ordinary user: its own stale socket goes, root's socket beside it stays."""
    sockdir = os.path.join(tmux_env.root, f"tmux-{NOBODY}")
    os.mkdir(sockdir, 0o700)
    mine = tmux_env.fake_stale("mine", sockdir)
    roots = tmux_env.fake_stale("roots", sockdir)
    os.chown(mine, NOBODY, NOBODY)
    os.chown(sockdir, NOBODY, NOBODY)

    report = as_user(NOBODY, lambda: core.sweep([sockdir]).to_json())

    seen = entries(report)
    assert seen["mine"]["removed"] is True
    assert seen["roots"]["state"] == "skipped"
    assert not os.path.lexists(mine)
    assert os.path.exists(roots)


def test_non_utf8_name_is_handled(tmux_env: TmuxEnv, cli: Callable[..., CliResult]) -> None:
    name = os.fsdecode(b"bad-\xff-name")
    path = tmux_env.fake_stale(name)
    result = cli("sweep", "--json")
    assert result.code == 0, result.err
    seen = entries(result.json())
    assert seen["bad-\\xff-name"]["removed"] is True
    assert not os.path.lexists(path)


def test_socket_path_of_exactly_107_bytes(tmux_env: TmuxEnv, cli: Callable[..., CliResult]) -> None:
    """107 bytes is the most sun_path holds."""
    name = "n" * (107 - len(tmux_env.sockdir) - 1)
    path = tmux_env.fake_stale(name)
    assert len(path) == 107
    result = cli("sweep", "--json")
    assert result.code == 0, result.err
    assert entries(result.json())[name]["removed"] is True
    assert not os.path.lexists(path)


def test_socket_path_longer_than_sun_path(tmux_env: TmuxEnv, cli: Callable[..., CliResult]) -> None:
    """A socket whose full path exceeds 107 bytes (bound through a relative name) is still
    probed correctly, through /proc/self/fd/N/NAME, and removed when stale."""
    deep = tmux_env.root
    while len(deep) < 130:
        deep = os.path.join(deep, "d" * 20)
        os.mkdir(deep, 0o700)
    path = tmux_env.fake_stale("s", deep)
    assert len(path) > 107
    result = cli("sweep", "--json", "--dir", deep)
    assert result.code == 0, result.err
    assert entries(result.json())["s"]["removed"] is True
    assert not os.path.lexists(path)


def test_sweep_copes_with_a_tree_that_changes_underneath(tmux_env: TmuxEnv) -> None:
    """An entry that vanishes between listing and probing is simply not reported."""
    d = tmux_env.sockdir
    make_stale_socket(os.path.join(d, "a"))
    fd, _ = sockdir.open_socket_dir(d)
    assert fd is not None
    try:
        os.unlink(os.path.join(d, "a"))
        result = core.SweepResult()
        run = core._Run(probe.Budget(1), 1.0, False, frozenset())
        core._sweep_dir(fd, d, result, run)
    finally:
        os.close(fd)
    assert result.sockets == []
    shutil.rmtree(d)
