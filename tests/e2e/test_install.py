"""install.sh in a fresh throw-away HOME: twice (idempotent), then --uninstall leaves nothing.

Here systemd is not PID 1 and root has no user manager, so this is the "no running systemd" path:
the command is installed, the first sweep runs, and the script says the timer could not be enabled.
The path with a running manager is covered by test_systemd_e2e.py through `units install`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from forge_tmux import systemd
from forge_tmux_testing import REPO
from forge_tmux_testing.tmux_world import make_stale_socket


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_install(home: Path, tmpdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "HOME": str(home),
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "TMUX_TMPDIR": str(tmpdir),  # the first sweep looks here, not at the machine's /tmp
        # Caches of pip (and of toolchain shims on PATH) stay out of the HOME under test.
        "XDG_CACHE_HOME": str(home.parent / "cache"),
        "RUSTUP_HOME": str(home.parent / "rustup"),
        "FORGE_TMUX_PREFIX": str(home / "opt"),
        "FORGE_TMUX_BINDIR": str(home / "bin"),
    }
    for key in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE"):
        if key in os.environ:
            env[key] = os.environ[key]
    return subprocess.run(
        ["bash", str(REPO / "install.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(home),
    )


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", [[], ["--system"]], ids=["user", "system"])
def test_install_twice_then_uninstall(tmp_path: Path, mode: list[str]) -> None:
    if mode and os.geteuid() != 0:
        pytest.skip("install.sh --system needs root")
    if mode and systemd.manager_state(user=False) is not None:
        pytest.skip("a system manager runs here: install.sh --system would change the real machine")
    home = tmp_path / "home"
    home.mkdir()
    tmpdir = tmp_path / "t"
    sockdir = tmpdir / f"tmux-{os.geteuid()}"
    sockdir.mkdir(parents=True, mode=0o700)
    baseline = tree(home)

    stale = sockdir / "left-over"
    make_stale_socket(str(stale))
    first = run_install(home, tmpdir, *mode)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "timer could NOT be enabled" in first.stdout
    assert ("system manager" if mode else "user manager") in first.stdout
    assert "first sweep" in first.stdout
    assert not stale.exists()  # the first sweep ran
    link = home / "bin" / "forge-tmux"
    assert link.is_symlink()
    assert os.readlink(link) == str(home / "opt" / "venv" / "bin" / "forge-tmux")
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("forge-tmux ")

    installed = tree(home)
    second = run_install(home, tmpdir, *mode)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "creating virtualenv" not in second.stdout
    assert tree(home) == installed  # idempotent: nothing new, nothing lost

    gone = run_install(home, tmpdir, *mode, "--uninstall")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    # Empty XDG base directories may stay (the first sweep's record made them; it is gone).
    assert tree(home) - {".local", ".local/state"} == baseline
    assert run_install(home, tmpdir, *mode, "--uninstall").returncode == 0  # again: nothing to do


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown option --bogus"),
        (["--run-as", "x"], "--run-as is for --system"),
        (["--user", "x"], "--run-as is for --system"),  # the old spelling, still understood
        (["--run-as"], "--run-as needs a user name"),
        (["--with-bot", "--with-post-boot", "--bogus"], "unknown option --bogus"),
    ],
)
def test_bad_option_is_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_install(tmp_path, tmp_path, *args)
    assert result.returncode == 2
    assert message in result.stderr
