"""Directory scanning and the safety rules, without sockets (pyfakefs)."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest
from pyfakefs.fake_filesystem_unittest import Patcher

from forge_tmux import paths, sockdir, sweep
from forge_tmux.probe import SocketState, precheck


def fake_stat(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, uid, uid, 0, 0, 0, 0))


def test_precheck_rules() -> None:
    me = 1000
    assert precheck(fake_stat(stat.S_IFSOCK | 0o600, me), me) is None
    assert precheck(fake_stat(stat.S_IFLNK | 0o777, me), me) == (
        SocketState.SKIPPED,
        "symlink, never followed",
        None,
    )
    for mode, kind in (
        (stat.S_IFREG | 0o600, "regular file"),
        (stat.S_IFIFO | 0o600, "fifo"),
        (stat.S_IFDIR | 0o700, "directory"),
        (stat.S_IFCHR | 0o600, "special file"),
    ):
        probe = precheck(fake_stat(mode, me), me)
        assert probe is not None
        assert probe.reason == f"not a socket ({kind})"
    theirs = precheck(fake_stat(stat.S_IFSOCK | 0o600, 1001), me)
    assert theirs is not None
    assert theirs.state is SocketState.SKIPPED
    assert theirs.reason == "owned by uid 1001, not ours"


@pytest.mark.parametrize(
    ("mode", "uid", "reason"),
    [
        (stat.S_IFDIR | 0o700, 1000, ""),
        (stat.S_IFDIR | 0o500, 1000, ""),
        (stat.S_IFDIR | 0o750, 1000, "unsafe permissions 0750 (group/other bits set)"),
        (stat.S_IFDIR | 0o701, 1000, "unsafe permissions 0701 (group/other bits set)"),
        (stat.S_IFDIR | 0o1777, 1000, "unsafe permissions 1777 (group/other bits set)"),
        (stat.S_IFDIR | 0o700, 0, "owned by uid 0, not ours"),
        (stat.S_IFREG | 0o600, 1000, "not a directory"),
    ],
)
def test_unsafe_dir_reason(mode: int, uid: int, reason: str) -> None:
    assert sockdir.unsafe_dir_reason(fake_stat(mode, uid), 1000) == reason


def test_scan_of_a_fake_tree_touches_no_non_socket() -> None:
    with Patcher() as patcher:
        fs = patcher.fs
        assert fs is not None
        me = os.geteuid()
        d = "/tmp/tmux-test"
        fs.create_dir(d, perm_bits=0o700)
        fs.create_file(f"{d}/notes.txt", contents="x")
        fs.create_dir(f"{d}/sub")
        fs.create_symlink(f"{d}/link", "/elsewhere/sock")
        fs.create_file(f"{d}/orphan.lock")
        result = sweep.sweep([d, "/tmp/absent"])
        by_name = {os.path.basename(s.path): s for s in result.sockets}
        assert by_name["notes.txt"].state is SocketState.SKIPPED
        assert by_name["sub"].reason == "not a socket (directory)"
        assert by_name["link"].reason == "symlink, never followed"
        assert "orphan.lock" not in by_name
        assert os.path.exists(f"{d}/notes.txt")
        assert os.path.isdir(f"{d}/sub")
        assert os.path.islink(f"{d}/link")
        assert [x.status for x in result.dirs] == [
            sweep.DirStatus.SWEPT,
            sweep.DirStatus.MISSING,
        ]
        assert result.ok
        assert me == os.geteuid()


def test_fake_unsafe_dir_is_refused_with_nothing_touched() -> None:
    with Patcher() as patcher:
        fs = patcher.fs
        assert fs is not None
        d = "/tmp/tmux-open"
        fs.create_dir(d, perm_bits=0o777)
        fs.create_file(f"{d}/keep")
        result = sweep.sweep([d])
        assert result.dirs[0].status is sweep.DirStatus.REFUSED
        assert result.sockets == []
        assert not result.ok
        assert os.path.exists(f"{d}/keep")


def test_socket_dir_honours_tmux_tmpdir_like_tmux() -> None:
    with Patcher() as patcher:
        fs = patcher.fs
        assert fs is not None
        fs.create_dir("/srv/tt")
        fs.create_symlink("/srv/link", "/srv/tt")
        assert paths.tmux_socket_dir(1000, {"TMUX_TMPDIR": "/srv/tt"}) == "/srv/tt/tmux-1000"
        # tmux resolves the directory (realpath) ...
        assert paths.tmux_socket_dir(1000, {"TMUX_TMPDIR": "/srv/link"}) == "/srv/tt/tmux-1000"
        # ... and silently falls back to /tmp when it does not exist or is empty.
        assert paths.tmux_socket_dir(1000, {"TMUX_TMPDIR": "/nope"}) == "/tmp/tmux-1000"
        assert paths.tmux_socket_dir(1000, {"TMUX_TMPDIR": ""}) == "/tmp/tmux-1000"
        # A regular file resolves, so tmux takes it (and then fails); so do we, and the sweep
        # then finds /srv/afile/tmux-1000 missing instead of sweeping /tmp behind tmux's back.
        fs.create_file("/srv/afile")
        assert paths.tmux_socket_dir(1000, {"TMUX_TMPDIR": "/srv/afile"}) == "/srv/afile/tmux-1000"
        assert paths.tmux_socket_dir(1000, {}) == "/tmp/tmux-1000"


def test_render_human_lists_what_is_not_live() -> None:
    result = sweep.SweepResult()
    result.dirs.append(sweep.DirResult("/d", sweep.DirStatus.SWEPT, ""))
    result.dirs.append(sweep.DirResult("/e", sweep.DirStatus.REFUSED, "owned by uid 0, not ours"))
    result.sockets.append(sweep.SocketResult("/d/a", SocketState.LIVE, False, "server listening"))
    result.sockets.append(sweep.SocketResult("/d/b", SocketState.STALE, True, "removed: x"))
    result.sockets.append(sweep.SocketResult("/d/c", SocketState.SKIPPED, False, "fifo"))
    text = sweep.render_human(result)
    assert text.splitlines() == [
        "refused  /e: owned by uid 0, not ours",
        "skipped  /d/c: fifo",
        "sweep: 1 live, 1 stale, 1 removed, 0 unknown, 1 skipped in 2 dir(s), 0.0 ms",
    ]
    assert [s["code"] for s in _sockets_json(result)] == ["kept", "kept", "kept"]
    assert sweep.log_events(result) == [
        (sweep.WARNING, "refused /e: owned by uid 0, not ours"),
        (sweep.NOTICE, "removed stale tmux socket /d/b: removed: x"),
    ]


def _sockets_json(result: sweep.SweepResult) -> list[dict[str, Any]]:
    sockets = result.to_json()["sockets"]
    assert isinstance(sockets, list)
    return sockets


def test_render_human_counts_would_remove_by_code_not_by_wording() -> None:
    """The dry-run count follows the machine code: a reason that merely reads like the dry-run
    text is not counted, and rewording the dry-run text would not lose the count."""
    result = sweep.SweepResult()
    result.dirs.append(sweep.DirResult("/d", sweep.DirStatus.SWEPT, ""))
    would = sweep.Code.WOULD_REMOVE
    result.sockets.append(sweep.SocketResult("/d/a", SocketState.STALE, False, "x", code=would))
    result.sockets.append(sweep.SocketResult("/d/b", SocketState.UNKNOWN, False, "would remove?"))
    text = sweep.render_human(result, dry_run=True)
    assert "1 would be removed" in text.splitlines()[-1]
    assert [s["code"] for s in _sockets_json(result)] == ["would_remove", "kept"]
