"""The shared part of the doors: run a program with a timeout that kills, look it up once."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from forge_tmux import procs, systemd, tmux

SH = shutil.which("sh") or "/bin/sh"


def test_exit_status_and_output_are_data() -> None:
    ran = procs.run([SH, "-c", "printf 'a\\r\\nb'; echo oops >&2; exit 3"], timeout=10)
    assert (ran.returncode, ran.stdout, ran.stderr) == (3, "a\nb", "oops\n")  # as text=True
    assert not ran.ok and not ran.timed_out and ran.why == "oops"


def test_timeout_kills_and_keeps_what_was_said() -> None:
    started = time.monotonic()
    ran = procs.run([SH, "-c", "echo early; exec sleep 30"], timeout=0.3)
    assert time.monotonic() - started < 10
    assert ran.timed_out and ran.returncode is None and ran.stdout == "early\n"
    assert ran.why == f"{SH} timed out"


def test_a_program_that_closes_its_output_and_stays_is_killed_at_the_timeout() -> None:
    started = time.monotonic()
    ran = procs.run([SH, "-c", "exec >&- 2>&-; exec sleep 30"], timeout=0.3)
    assert ran.timed_out and time.monotonic() - started < 10


def test_a_missing_program_raises_for_the_door_to_name() -> None:
    with pytest.raises(FileNotFoundError):
        procs.run(["/nonexistent/forge-tmux-x"], timeout=5)


def test_binaries_are_looked_up_once_per_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PATH search per tmux call cost `health` a stat per PATH entry per server."""
    calls: list[str] = []
    real = shutil.which

    def counting(name: str, mode: int = os.F_OK | os.X_OK, path: str | None = None) -> str | None:
        calls.append(name)
        return real(name, mode, path)

    for name in ("tmux", "systemctl"):
        tool = tmp_path / name
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(shutil, "which", counting)
    assert tmux.tmux_binary() == tmux.tmux_binary() == str(tmp_path / "tmux")
    assert systemd._binary("systemctl") == systemd._binary("systemctl")
    assert calls == ["tmux", "systemctl"]


def test_a_miss_is_not_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(tmux.TmuxNotFound):
        tmux.tmux_binary()
    tool = tmp_path / "tmux"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert tmux.tmux_binary() == str(tool)  # installed since: found
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("PATH", str(other))
    with pytest.raises(tmux.TmuxNotFound):
        tmux.tmux_binary()  # another PATH, another answer


def test_the_doors_share_one_record() -> None:
    """`SystemdResult` is the record; `TmuxResult` is the same record read the tmux way."""
    assert systemd.SystemdResult is procs.Ran
    assert issubclass(tmux.TmuxResult, procs.Ran)
    quiet_failure = tmux.TmuxResult(("tmux",), 0, "", "error creating /x (Address in use)")
    assert not quiet_failure.ok  # tmux exits 0 on some failures: the text decides
    assert procs.Ran(("systemctl",), 0, "", "a warning").ok
    ran = systemd.run([sys.executable, "-c", "print('hi')"], timeout=30)
    assert (ran.argv[0], ran.stdout) == (sys.executable, "hi\n")
