"""Packaging as users meet it: `pipx install` and `uv tool install` from this tree give a working
command whose rendered units point at the tool's own environment (not a system Python), with the
man page; the sdist carries every tracked file `scripts/test` needs; the license metadata is SPDX.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from forge_tmux_testing import REPO

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (it is in the test extras)")
    return found


def _install(tool: str, root: Path) -> Path:
    """Install this tree with `tool` under `root`; the directory of the installed command."""
    env = {**os.environ, "HOME": str(root / "home")}
    if tool == "pipx":
        env.update(PIPX_HOME=str(root / "pipx"), PIPX_BIN_DIR=str(root / "bin"))
        env.update(PIPX_MAN_DIR=str(root / "man"))
        argv = [_tool("pipx"), "install", "--python", sys.executable, str(REPO)]
    else:
        env.update(UV_TOOL_DIR=str(root / "uv"), UV_TOOL_BIN_DIR=str(root / "bin"))
        env.update(UV_CACHE_DIR=str(root / "cache"))
        argv = [_tool("uv"), "tool", "install", "--python", sys.executable, str(REPO)]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "bin"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("tool", ["pipx", "uv"])
def test_tool_install_renders_units_for_its_own_environment(tmp_path: Path, tool: str) -> None:
    bindir = _install(tool, tmp_path)
    command = bindir / "forge-tmux"
    version = subprocess.run([command, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("forge-tmux ")

    out = tmp_path / "units"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    subprocess.run([command, "units", "render", "--out", out], env=env, check=True)
    service = (out / "forge-tmux-socket-sweep.service").read_text()
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    program = exec_start.removeprefix("ExecStart=").split()[0]
    env_root = tmp_path / ("pipx/venvs" if tool == "pipx" else "uv")
    assert program.startswith(f"{env_root}/forge-tmux/bin/"), exec_start
    assert os.access(program, os.X_OK)
    # The man page travels in the environment (share/man/man1); pipx links it for `man`.
    pages = list(env_root.glob("forge-tmux/share/man/man1/forge-tmux.1"))
    assert pages, "the man page is not in the installed environment"
    if tool == "pipx":
        assert (tmp_path / "man" / "man1" / "forge-tmux.1").exists()


def test_sdist_carries_tests_scripts_and_docs(tmp_path: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout (this is the sdist itself)")
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    built = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "License classifiers are deprecated" not in built.stderr
    assert "project.license` as a TOML table is deprecated" not in built.stderr
    sdist = tmp_path / built.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        members = {n.removeprefix(top + "/") for n in names}
        info = tar.extractfile(f"{top}/PKG-INFO")
        assert info is not None
        metadata = info.read().decode()
        mode = tar.getmember(f"{top}/scripts/test").mode
    assert sorted(f for f in tracked if f not in members and f != ".gitignore") == []
    assert mode & 0o111  # scripts/test stays executable
    assert "License-Expression: MIT" in metadata
    assert "License-File: LICENSE" in metadata
