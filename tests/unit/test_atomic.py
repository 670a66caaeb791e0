"""The one atomic writer (health --output, the health memory, the Telegram outbox): whole or
nothing, durable, and never in place of something that is not a regular file."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from forge_tmux import healthstate, notify
from forge_tmux.atomic import write_atomic
from forge_tmux.errors import NotRegularFile
from forge_tmux.health import Health
from forge_tmux_testing.health_samples import sample


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    target = tmp_path / "out"
    write_atomic(str(target), "x" * 1000 + "\u00e9\n", 0o644)
    assert target.read_text(encoding="utf-8") == "x" * 1000 + "\u00e9\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_an_error_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out"
    target.write_text("old\n")

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        write_atomic(str(target), "new\n")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out"]


def _fsynced_kinds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    kinds: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        kinds.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return kinds


def test_the_health_memory_and_output_survive_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file and its directory are fsynced: the rename is durable (the directory was not)."""
    kinds = _fsynced_kinds(monkeypatch)
    healthstate.update(sample(Health.LIVE), consumer="test", directory=str(tmp_path))
    assert kinds == ["file", "dir"]
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [
        "health-test.json"
    ]


def test_the_outbox_writes_through_the_same_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kinds = _fsynced_kinds(monkeypatch)
    box = notify.Outbox(str(tmp_path / "outbox"))
    name = box.put("caf\udce9")  # a lone surrogate from undecodable input is replaced
    assert kinds == ["file", "dir"]
    assert box.read(name) == "caf?"
    assert sorted(os.listdir(box.directory)) == [name]


def test_what_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NotRegularFile, match="is a symbolic link"):
        write_atomic(str(link), "x\n")
    assert not (tmp_path / "elsewhere").exists() and link.is_symlink()
    assert os.listdir(tmp_path) == ["link"]
