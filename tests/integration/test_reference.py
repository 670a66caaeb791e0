"""The command reference and the man page come from the program itself and cannot drift:
docs/reference.md is regenerated and compared, the man page is checked by man(1)'s own warnings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forge_tmux import _reference
from forge_tmux.cli import COMMANDS, HIDDEN
from forge_tmux_testing import REPO


def test_committed_reference_is_current() -> None:
    committed = (REPO / "docs" / "reference.md").read_text()
    assert committed == _reference.markdown(), (
        "docs/reference.md is stale: python -m forge_tmux._reference markdown > docs/reference.md"
    )


def test_committed_man_page_is_current() -> None:
    committed = (REPO / "man" / "forge-tmux.1").read_text()
    assert committed == _reference.man(), (
        "man/forge-tmux.1 is stale: python -m forge_tmux._reference man > man/forge-tmux.1"
    )


def test_every_command_and_option_is_documented() -> None:
    found = {c.path.removeprefix("forge-tmux ").split(" ")[0] for c in _reference.commands()}
    assert found >= set(COMMANDS) - HIDDEN
    page = _reference.markdown()
    for needle in ("--format", "-w, --warning [STATE=]RANGE", "--run-as USER", "--dir DIR"):
        assert needle in page
    assert "--user USER" not in page  # the deprecated spelling stays hidden


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
def test_man_page_has_no_warnings(tmp_path: Path) -> None:
    page = tmp_path / "forge-tmux.1"
    generated = subprocess.run(
        [sys.executable, "-m", "forge_tmux._reference", "man"],
        capture_output=True,
        text=True,
        check=True,
    )
    page.write_text(generated.stdout)
    assert generated.stdout.startswith('.TH "FORGE-TMUX" "1"')  # install.sh's uninstall looks
    rendered = subprocess.run(
        ["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", str(page)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MANWIDTH": "80", "LANG": "C.UTF-8"},
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stderr == ""
    text = re.sub(".\b", "", rendered.stdout)  # overstrike bold and underline
    for command in COMMANDS.keys() - HIDDEN:
        assert f"forge-tmux {command}" in text.replace("\u2010", "-")


def test_usage() -> None:
    assert _reference.main(["nonsense"]) == 2
