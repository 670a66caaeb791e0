"""Start-up of the command line: what `--help`, `--version` and a plain sweep import, and that
the lazily built `--help` says exactly what the commands themselves say."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
import typer.core

from forge_tmux.cli import COMMANDS, HIDDEN, SUMMARIES
from forge_tmux.cli._root import command_group
from forge_tmux_testing.cli import run_cli

# Never on the path of a plain sweep, of --help or of --version (issue 12).
HEAVY = ("telegram", "jinja2", "psutil", "json")


# Runs the real entry point (`python -m forge_tmux`) and reports sys.modules as the process
# exits. (`-X importtime` cannot tell: it misses modules loaded through importlib.)
PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules))))\n"
    "runpy.run_module('forge_tmux', run_name='__main__', alter_sys=True)\n"
)


def imported(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """Every module loaded by the time `forge-tmux ARGS` exits."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stderr.rsplit("MODULES ", 1)[1].split())


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY}


def test_version_imports_neither_typer_nor_a_command() -> None:
    modules = imported("--version")
    assert not heavy(modules)
    assert not {m for m in modules if m.split(".")[0] == "typer"}
    assert not {m for m in modules if m.startswith("forge_tmux.cli._")}


def test_help_imports_no_command_module() -> None:
    modules = imported("--help")
    assert not heavy(modules)
    # _fast looks at the command line first (and leaves --help to Typer).
    assert {m for m in modules if m.startswith("forge_tmux.cli._")} == {
        "forge_tmux.cli._fast",
        "forge_tmux.cli._root",
    }


def test_plain_sweep_imports_nothing_heavy(tmp_path: os.PathLike[str]) -> None:
    empty = os.path.join(os.fspath(tmp_path), "empty")
    os.mkdir(empty, 0o700)
    env = {**os.environ, "XDG_CONFIG_HOME": os.fspath(tmp_path)}
    modules = imported("sweep", "--dir", empty, env=env)
    assert "forge_tmux.sweep" in modules  # the sweep really ran
    assert not heavy(modules)
    # The timer's command line is parsed without Typer (forge_tmux.cli._fast).
    assert not {m for m in modules if m.split(".")[0] == "typer"}
    assert {m for m in modules if m.startswith("forge_tmux.cli._")} == {
        "forge_tmux.cli._fast",
        "forge_tmux.cli._sweep_run",
    }


def test_the_health_timer_and_plugin_need_no_typer(tmp_path: os.PathLike[str]) -> None:
    empty = os.path.join(os.fspath(tmp_path), "empty")
    os.mkdir(empty, 0o700)
    env = {**os.environ, "XDG_CONFIG_HOME": os.fspath(tmp_path)}
    for fmt in ("prometheus", "nagios"):
        modules = imported("health", "--dir", empty, "--format", fmt, env=env)
        assert "forge_tmux.health" in modules
        assert not {m for m in modules if m.split(".")[0] in ("typer", "telegram", "jinja2")}


def test_a_sweep_typer_must_parse_still_loads_only_its_command(
    tmp_path: os.PathLike[str],
) -> None:
    empty = os.path.join(os.fspath(tmp_path), "empty")
    os.mkdir(empty, 0o700)
    env = {**os.environ, "XDG_CONFIG_HOME": os.fspath(tmp_path)}
    modules = imported("-vv", "sweep", "--dir", empty, env=env)  # bundled flags: Typer's
    assert "forge_tmux.sweep" in modules
    assert not heavy(modules)
    assert {m for m in modules if m.startswith("forge_tmux.cli._")} == {
        "forge_tmux.cli._fast",
        "forge_tmux.cli._root",
        "forge_tmux.cli._sweep",
        "forge_tmux.cli._sweep_run",
    }


def real_commands() -> dict[str, str]:
    """Each command's first help paragraph as its own module declares it, on one line."""
    for module in sorted(set(COMMANDS.values())):
        importlib.import_module(module)
    group = command_group()
    assert isinstance(group, typer.core.TyperGroup)
    return {
        name: " ".join((command.help or "").split("\n\n")[0].split())
        for name, command in group.commands.items()
    }


def test_summaries_are_the_commands_own_help() -> None:
    real = real_commands()
    missing = sorted(real.keys() - SUMMARIES.keys())
    assert not missing, f"add {missing} to SUMMARIES in forge_tmux/cli/__init__.py"
    assert real == SUMMARIES
    assert list(SUMMARIES) == list(COMMANDS)


def test_lazy_help_is_the_full_help() -> None:
    env = {**os.environ, "COLUMNS": "80"}
    lazy = run_cli("--help", env=env)
    full = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib, sys; from forge_tmux.cli import COMMANDS, main\n"
            "for m in set(COMMANDS.values()): importlib.import_module(m)\n"
            "sys.exit(main(['--help']))",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (lazy.code, full.returncode) == (0, 0), lazy.err + full.stderr
    assert lazy.out == full.stdout
    listed = lazy.out.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == [c for c in COMMANDS if c not in HIDDEN]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_its_help(name: str) -> None:
    result = run_cli(name, "--help")
    assert result.code == 0, result.err
    assert result.out.startswith(f"Usage: forge-tmux {name} ")


def test_a_command_after_double_dash_still_runs(tmp_path: os.PathLike[str]) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": os.fspath(tmp_path)}
    missing = os.path.join(os.fspath(tmp_path), "missing")
    result = run_cli("--", "sweep", "--dir", missing, "--json", env=env)
    assert result.code == 0, result.err
    assert result.json()["dirs"][0]["status"] == "missing"


def test_a_misspelt_command_gets_a_suggestion() -> None:
    result = run_cli("sweeep")
    assert result.code == 2
    assert result.err == "forge-tmux: error: No such command 'sweeep'. Did you mean 'sweep'?\n"


def test_version_with_other_global_options() -> None:
    for args in (["--version"], ["-v", "--version"], ["--config", "/nonexistent", "--version"]):
        result = run_cli(*args)
        assert (result.code, result.out) == (
            0,
            f"forge-tmux {__import__('forge_tmux').__version__}\n",
        )


def test_psutil_stays_off_the_sweep_path_and_out_of_health_imports() -> None:
    code = (
        "import sys, forge_tmux.cli.common, forge_tmux.config, forge_tmux.probe, "
        "forge_tmux.sweep, forge_tmux.health, forge_tmux.healthstate, forge_tmux.orphans, "
        "forge_tmux.cli._health; print('psutil' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
