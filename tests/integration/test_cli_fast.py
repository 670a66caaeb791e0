"""The fast path (forge_tmux.cli._fast): the timers' command lines parsed without Typer.

Three things make it safe, and each has its test here:
- its table is the Typer declarations, read back from the real click commands: an option added,
  renamed or retyped in Typer and not here fails the first test;
- it takes only what it fully understands: everything else reaches Typer untouched;
- what it takes, it runs exactly as Typer would: the same command lines, run both ways on the same
  directories (a real tmux server, stale sockets, a file that is not a socket), give the same exit
  code, stdout, stderr and files left.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import socket
import subprocess
import sys

import pytest
from typer._click import core as click
from typer._click import types as click_types
from typer._types import TyperChoice
from typer.core import TyperGroup, TyperOption

from forge_tmux.cli import COMMANDS, _fast
from forge_tmux.cli._root import command_group
from forge_tmux_testing.tmux_world import TmuxEnv, make_stale_socket, needs_tmux

# Root options the fast path leaves to Typer: eager ones and shell completion.
TYPER_ONLY_GLOBALS = {"--version", "--install-completion", "--show-completion"}


def declared(params: list[click.Parameter]) -> dict[str, _fast.Opt]:
    """The fast path's table as the click parameters declare it."""
    table: dict[str, _fast.Opt] = {}
    for param in params:
        assert isinstance(param, TyperOption), param
        assert param.name is not None
        assert not param.secondary_opts, param  # --no-X: not in the table
        choices: tuple[str, ...] = ()
        if param.is_flag:
            kind = _fast.FLAG
        elif param.multiple and param.type is click_types.STRING:
            kind = _fast.MANY
        elif param.type is click_types.FLOAT:
            kind = _fast.FLOAT
        elif param.type is click_types.STRING:
            kind = _fast.TEXT
        elif isinstance(param.type, TyperChoice) and param.type.case_sensitive:
            kind, choices = _fast.CHOICE, tuple(map(str, param.type.choices))
        else:
            kind = f"unknown to the fast path: {param.type!r}"
        for opt in param.opts:
            table[opt] = _fast.Opt(param.name, kind, choices)
    return table


def typer_group() -> TyperGroup:
    for name in _fast.OPTIONS:
        importlib.import_module(COMMANDS[name])  # the Typer declaration
    group = command_group()
    assert isinstance(group, TyperGroup)
    return group


def test_the_table_is_the_typer_declarations() -> None:
    group = typer_group()
    roots = declared([p for p in group.params if not set(p.opts) & TYPER_ONLY_GLOBALS])
    assert roots == _fast.GLOBAL
    assert {o for p in group.params for o in p.opts} == set(_fast.GLOBAL) | TYPER_ONLY_GLOBALS
    for name, table in _fast.OPTIONS.items():
        command = group.commands[name]
        assert declared(command.params) == table, name
        # The runner takes exactly the Typer function's parameters (but its context), by name.
        runner = importlib.import_module(_fast.RUNNERS[name]).run
        wanted = [p.name for p in command.params]
        assert list(inspect.signature(runner).parameters)[1:] == wanted


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["sweep", "--help"],
        ["sweep", "-h"],
        ["-vv", "sweep"],
        ["--", "sweep"],
        ["sweep", "--"],
        ["sweep", "--json=1"],
        ["sweep", "--dry-run=yes"],
        ["sweep", "--dir"],
        ["sweep", "--dir", "--json"],
        ["sweep", "--dir", "-"],
        ["sweep", "--bogus"],
        ["sweep", "--dr"],  # click does not expand abbreviations; Typer says so
        ["sweep", "extra"],
        ["sweep", "--timeout", "abc"],
        ["sweep", "--timeout", "-1"],  # looks like an option
        ["sweep", "--timeout="],
        ["--version", "sweep"],
        ["--install-completion"],
        ["--config", "-", "sweep"],
        ["--config"],
        ["-v"],
        ["sweep", "--config", "x"],  # a global option after the command
        ["health", "--format", "xml"],
        ["health", "--format", "NAGIOS"],  # click's choices are case-sensitive here
        ["health", "-w5"],  # an attached short value: Typer's
        ["health", "-w", "-5:"],
        ["health", "--check=yes"],
        ["recover"],
        ["sweeep"],
        ["", "sweep"],
    ],
)
def test_what_it_does_not_fully_understand_goes_to_typer(args: list[str]) -> None:
    assert _fast.parse(args) is None


def test_shell_completion_goes_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _fast.parse(["sweep"]) is not None
    monkeypatch.setenv("_FORGE_TMUX_COMPLETE", "complete_bash")
    assert _fast.parse(["sweep"]) is None


def test_it_reads_what_click_reads() -> None:
    globals_ = ["-v", "--config=/c", "--config", "/d"]
    options = ["--dir", "a", "--dir=b=c", "--json", "--timeout", " 1e1 ", "--timeout=2_5"]
    parsed = _fast.parse([*globals_, "sweep", *options, "--json", "--dir", ""])
    assert parsed == _fast.Parsed(
        "sweep", "/d", True, {"dirs": ["a", "b=c", ""], "json_out": True, "timeout": 25.0}
    )


# Run a command line through one path, in a fresh process as the entry point would.
ENTRY = {
    "fast": "import sys; from forge_tmux.cli import main; sys.exit(main(sys.argv[1:]))",
    "typer": "import sys; from forge_tmux.cli import _run; sys.exit(_run(sys.argv[1:]))",
}
# What differs between two runs of the same command anyway: durations and timestamps.
_TIMES = re.compile(
    r'\d+\.\d+ ms|"(duration_ms|timestamp)": [0-9.e-]+'
    r"|(duration_seconds|timestamp_seconds|duration=)[ ]?[0-9.e-]+s?"
)


def through(path: str, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `forge-tmux ARGS` through the fast path or Typer's."""
    proc = subprocess.run(
        [sys.executable, "-c", ENTRY[path], *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )
    return proc.returncode, _TIMES.sub("T", proc.stdout), _TIMES.sub("T", proc.stderr)


def lay_out(tmux_env: TmuxEnv, extra: str) -> None:
    """Two stale sockets in each directory and a file that is not a socket (the live server
    stays through every run)."""
    for directory in (tmux_env.sockdir, extra):
        for name in ("old-1", "old-2"):
            if not os.path.lexists(os.path.join(directory, name)):
                make_stale_socket(os.path.join(directory, name))
    with open(os.path.join(tmux_env.sockdir, "notes.txt"), "w") as fh:
        fh.write("not a socket\n")


@needs_tmux
def test_both_paths_run_the_same(tmux_env: TmuxEnv) -> None:
    tmux_env.start("live")
    extra = os.path.join(tmux_env.root, "extra")
    os.mkdir(extra, 0o700)
    config_dir = os.path.join(tmux_env.env["XDG_CONFIG_HOME"], "forge-tmux")
    os.makedirs(config_dir)
    config = os.path.join(config_dir, "config.toml")
    with open(config, "w") as fh:
        fh.write(f'socket_dirs = ["{extra}"]\nprotected_sockets = ["old-2"]\n')
    bad = os.path.join(tmux_env.root, "bad.toml")
    with open(bad, "w") as fh:
        fh.write("socket_dirs = 3\n")
    d = tmux_env.sockdir
    missing = os.path.join(tmux_env.root, "missing")
    corpus = [
        ["sweep"],
        ["sweep", "--dir", d],
        ["sweep", f"--dir={d}", "--json"],
        ["sweep", "--dir", d, "--dry-run"],
        ["sweep", "--dir", d, "--dry-run", "--json", "--json"],
        ["-v", "sweep", "--dir", d],
        ["--verbose", f"--config={config}", "sweep", "--json"],
        ["--config", config, "sweep", "--dir", d, "--dir", extra, "--timeout", "1.5"],
        ["sweep", "--dir", d, "--timeout=1e0", "--json"],
        ["sweep", "--dir", d, "--timeout", "inf"],
        ["sweep", "--dir", d, "--timeout", "nan"],
        ["sweep", "--dir", d, "--timeout", "0"],
        ["sweep", "--dir", ""],
        ["sweep", "--dir", missing, "--json"],
        ["--config", bad, "sweep", "--dir", d],
        ["--config", missing, "sweep", "--dir", d],
        ["sweep", "--dir", d, "--notify"],
        ["sweep", "--dir", d, "--notify", "--dry-run"],
    ]
    codes = set()
    for args in corpus:
        assert _fast.parse(args) is not None, args  # the fast path really takes it
        seen = []
        for path in ("fast", "typer"):
            lay_out(tmux_env, extra)
            code, out, err = through(path, args, tmux_env.env)
            seen.append((code, out, err, sorted(os.listdir(d)), sorted(os.listdir(extra))))
        assert seen[0] == seen[1], args
        codes.add(seen[0][0])
    assert codes == {0, 2}  # the corpus did real work, and refused bad input


def drain(listener: socket.socket) -> None:
    """Accept and close what the previous run left queued on a listener that never answers."""
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        conn.close()


@needs_tmux
def test_both_paths_report_the_same_health(tmux_env: TmuxEnv) -> None:
    """health as the timer, the plugin and an operator run it; each run with a state directory
    of its own, so --events sees the same past both ways."""
    tmux_env.start("live")
    make_stale_socket(tmux_env.path("dead"))
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # listens, never answers
    hung.bind(tmux_env.path("hung"))
    hung.listen(8)
    hung.setblocking(False)
    d = tmux_env.sockdir
    out_dir = os.path.join(tmux_env.root, "out")
    os.mkdir(out_dir)
    prom = os.path.join(out_dir, "forge.prom")
    corpus = [
        ["health", "--timeout", "0.3"],  # the default directories
        ["health", "--dir", d, "--timeout", "0.3"],
        ["health", "--dir", d, "--json", "--timeout=0.3"],
        ["health", "--dir", d, "--format", "json", "--check", "--timeout", "0.3"],
        ["health", "--dir", d, "--format=prometheus", "--timeout", "0.3", "--output", prom],
        ["health", "--dir", d, "--format", "nagios", "--timeout", "0.3"],
        ["health", "--dir", d, "--format", "nagios", "-w", "dead=5", "-c", "hung=3", "-c", "0"],
        ["health", "--dir", d, "--format", "nagios", "--warning=bogus"],  # plugin UNKNOWN
        ["health", "--dir", d, "--format", "nagios", "--timeout", "0"],  # plugin UNKNOWN
        ["health", "--dir", d, "-w", "1"],  # thresholds without nagios: exit 2
        ["health", "--dir", d, "--json", "--format", "prometheus"],  # conflict: exit 2
        ["health", "--dir", d, "--events", "--timeout", "0.3"],
        ["health", "--dir", d, "--all-users", "--json", "--timeout", "0.3"],
        ["health", "--dir", os.path.join(tmux_env.root, "missing"), "--check"],
        ["health", "--dir", d, "--output", os.path.join(tmux_env.root, "no", "such")],
        ["-v", "health", "--dir", d, "--timeout", "0.3", "--events", "--json"],
    ]
    codes = set()
    try:
        for number, args in enumerate(corpus):
            assert _fast.parse(args) is not None, args
            seen = []
            for path in ("fast", "typer"):
                drain(hung)  # each run finds the same backlog: empty
                state = os.path.join(tmux_env.root, f"state-{number}-{path}")
                env = {**tmux_env.env, "FORGE_TMUX_STATE_DIR": state}
                code, out, err = through(path, args, env)
                written = ""
                if os.path.exists(prom):
                    with open(prom) as fh:
                        written = _TIMES.sub("T", fh.read())
                    os.unlink(prom)
                seen.append((code, out, err, written))
            assert seen[0] == seen[1], args
            codes.add(seen[0][0])
    finally:
        hung.close()
    assert codes == {0, 1, 2, 3}  # OK, problems found, bad usage, the plugin's UNKNOWN
