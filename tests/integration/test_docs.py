"""The documentation builds with `mkdocs build --strict` (a broken link, a missing page or a page
left out of the nav fails), and the draft README stays within its size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from forge_tmux_testing import REPO


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "reference" / "index.html").is_file()


def test_every_page_is_in_the_nav() -> None:
    config = (REPO / "mkdocs.yml").read_text()
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"README.draft.md"}
    assert {p for p in pages if f": {p}" not in config} == set()
