"""`forge-tmux audit`: default-socket tmux calls in shell, Python and unit files."""

from __future__ import annotations

import os

import pytest

from forge_tmux.audit import (
    FileKind,
    file_kind,
    scan_python,
    scan_shell,
    scan_unit,
    shell_uses_default_socket,
    socket_chosen,
)
from forge_tmux_testing.cli import Cli
from forge_tmux_testing.tmux_world import TmuxEnv

BAD_SCRIPT = """\
#!/bin/bash
# spawn the agents (tmux new -s commented out: fine)
set -e
tmux new-session -d -s agent1 claude
tmux -f ~/.tmux.conf new -d -s agent2 'claude --resume'
if ! tmux has-session -t agent3 2>/dev/null; then
  sudo -u bob tmux new -d -s agent3
fi
out=$(tmux list-sessions)
cd /srv && TERM=xterm /usr/bin/tmux \\
    attach -t agent1
tmux -L fleet new -d -s ok1; tmux kill-server
timeout 5 tmux ls
tmux
"""
BAD_SCRIPT_LINES = [4, 5, 6, 7, 9, 10, 12, 13, 14]

CLEAN_SCRIPT = """\
#!/bin/sh
# tmux new -s x   (a comment)
tmux -L fleet new-session -d -s agent1 claude
tmux -S /run/fleet/sock new -d -s agent2
tmux -Lfleet ls
tmux -uL fleet attach -t agent1
tmux -2 -L fleet capture-pane -p -S -100 -t agent1
TMUX_SOCKET=fleet
echo "install tmux first"; apt-get install -y tmux
command -v tmux >/dev/null || exit 1
cat ~/.tmux.conf /tmp/tmux-1000/default
[ -n "$TMUX" ] && echo inside
tmux -V
tmux $TMUX_OPTS new -d -s maybe
x=libtmux
"""


@pytest.mark.parametrize(
    ("args", "chosen"),
    [
        (["-L", "x", "new"], True),
        (["-Lx", "new"], True),
        (["-S", "/p", "new"], True),
        (["-uL", "x"], True),
        (["-f", "/dev/null", "-L", "x", "new"], True),
        (["-f", "-L", "new"], False),  # `-L` is the value of `-f` here
        (["-V"], True),
        (["new", "-L", "x"], False),  # after the subcommand it is no longer tmux's option
        (["capture-pane", "-S", "-100"], False),
        ([], False),
        ([None, "new"], True),  # a variable before the subcommand: do not guess
        (["new", None], False),
    ],
)
def test_socket_chosen(args: list[str | None], chosen: bool) -> None:
    assert socket_chosen(args) is chosen


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("tmux new -s x", True),
        ("exec tmux attach", True),
        ("env -i A=b tmux ls", True),
        ("nice -n 5 tmux ls", True),
        ("a && tmux ls", True),
        ("ls | xargs tmux kill-session -t", True),
        ("tmux -L a ls && tmux ls", True),
        ("tmux -L a ls && tmux -S /x ls", False),
        ("echo tmux ls", False),
        ("which tmux", False),
        ("pkill tmux", False),
        ("vim ~/.tmux.conf", False),
        ("libtmux ls", False),
        ("mytmux ls", False),
    ],
)
def test_shell_uses_default_socket(text: str, found: bool) -> None:
    assert shell_uses_default_socket(text) is found


def test_scan_shell_exact_lines() -> None:
    assert [line for line, _ in scan_shell(BAD_SCRIPT)] == BAD_SCRIPT_LINES
    # A continued command is reported once, at its first line, joined.
    joined = "cd /srv && TERM=xterm /usr/bin/tmux attach -t agent1"
    assert dict(scan_shell(BAD_SCRIPT))[10] == joined


def test_scan_shell_clean() -> None:
    assert list(scan_shell(CLEAN_SCRIPT)) == []


def test_scan_python() -> None:
    source = '''\
import os, subprocess
import libtmux
"""Docstring: tmux new -s x is how not to do it."""
subprocess.run(["tmux", "new-session", "-d", "-s", "a"])
subprocess.run(("/usr/bin/tmux", "-L", "fleet", "ls"))
subprocess.run(["tmux", *SOCKET, "ls"])
os.system("tmux kill-server")
os.system("tmux -L fleet kill-server")
log.warning("tmux ls failed")  # prose, not a command
libtmux.Server()
libtmux.Server(socket_name="fleet")
subprocess.run([TMUX, "ls"])  # a variable: unknown, skipped
cmd = ["tmux",
       "attach"]
socket_dirs = ["/run/tmux"]
'''
    assert [line for line, _ in scan_python(source)] == [4, 7, 10, 13]
    assert dict(scan_python(source))[7] == 'os.system("tmux kill-server")'


def test_scan_python_that_does_not_parse_falls_back_to_shell_rules() -> None:
    assert [line for line, _ in scan_python("def (:\ntmux ls\n")] == [2]


def test_scan_unit() -> None:
    unit = """\
[Unit]
Description=tmux new -s agents (prose)
[Service]
Type=forking
ExecStart=/usr/bin/tmux new-session -d -s agents
ExecStop=-/usr/bin/tmux -L agents kill-server
# ExecStart=/usr/bin/tmux new -d
; ExecStart=/usr/bin/tmux new -d
ExecStartPost=/bin/sh -c 'sleep 1; tmux send-keys -t agents Enter'
"""
    assert [line for line, _ in scan_unit(unit)] == [5, 9]


@pytest.mark.parametrize(
    ("name", "head", "kind"),
    [
        ("x.sh", b"", FileKind.SHELL),
        ("spawn", b"#!/bin/bash\n", FileKind.SHELL),
        ("spawn", b"#!/usr/bin/env zsh\n", FileKind.SHELL),
        ("spawn", b"#!/usr/bin/env python3\n", FileKind.PYTHON),
        ("x.py", b"", FileKind.PYTHON),
        ("agents.service", b"", FileKind.UNIT),
        ("README.md", b"tmux new", None),
        ("data", b"#!/usr/bin/perl\n", None),
    ],
)
def test_file_kind(name: str, head: bytes, kind: FileKind | None) -> None:
    assert file_kind(name, head) is kind


# ---- through the CLI ------------------------------------------------------------------------


def write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def test_audit_finds_default_socket_uses(tmux_env: TmuxEnv, cli: Cli) -> None:
    bad = write(os.path.join(tmux_env.root, "scripts", "spawn-agents.sh"), BAD_SCRIPT)
    result = cli("audit", bad)
    assert result.code == 1
    lines = result.out.splitlines()
    assert [int(line.split(":")[1]) for line in lines] == BAD_SCRIPT_LINES
    assert lines[0] == f"{bad}:4: tmux new-session -d -s agent1 claude"
    assert "9 default-socket tmux calls in 1 file(s)" in result.err


def test_audit_passes_a_clean_script(tmux_env: TmuxEnv, cli: Cli) -> None:
    clean = write(os.path.join(tmux_env.root, "clean.sh"), CLEAN_SCRIPT)
    result = cli("audit", clean)
    assert result.code == 0, result.out
    assert result.out == ""
    assert result.err == "audit: 0 default-socket tmux calls in 1 file(s)\n"


def test_audit_walks_directories(tmux_env: TmuxEnv, cli: Cli) -> None:
    top = os.path.join(tmux_env.root, "repo")
    write(os.path.join(top, "bin", "start"), "#!/bin/sh\ntmux new -d -s a\n")
    write(os.path.join(top, "units", "agents.service"), "[Service]\nExecStart=tmux new -d\n")
    write(os.path.join(top, "lib", "run.py"), 'import os\nos.system("tmux ls")\n')
    write(os.path.join(top, "lib", "ok.py"), 'import os\nos.system("tmux -L x ls")\n')
    write(os.path.join(top, "README.md"), "run `tmux new` to start\n")  # not a script
    write(os.path.join(top, ".git", "hooks", "x.sh"), "tmux ls\n")  # never walked
    result = cli("audit", "--json", top)
    assert result.code == 1
    data = result.json()
    assert data["ok"] is False
    assert data["files_scanned"] == 4
    assert [(os.path.relpath(f["path"], top), f["line"]) for f in data["findings"]] == [
        ("bin/start", 2),
        ("lib/run.py", 2),
        ("units/agents.service", 2),
    ]


def test_audit_missing_path_is_exit_2(tmux_env: TmuxEnv, cli: Cli) -> None:
    missing = os.path.join(tmux_env.root, "nope.sh")
    result = cli("audit", missing)
    assert result.code == 2
    assert result.err == f"forge-tmux: error: no such file or directory: {missing}\n"


def test_audit_needs_a_path(cli: Cli) -> None:
    assert cli("audit").code == 2


def test_audit_does_not_hang_on_a_fifo_and_says_so(tmux_env: TmuxEnv, cli: Cli) -> None:
    fifo = os.path.join(tmux_env.root, "pipe.sh")
    os.mkfifo(fifo)
    clean = write(os.path.join(tmux_env.root, "clean.sh"), CLEAN_SCRIPT)
    result = cli("audit", "--json", fifo, clean, timeout=10)
    assert result.code == 1
    assert result.json()["unreadable"] == [f"{fifo}: not a regular file"]
    assert result.json()["files_scanned"] == 1


def test_audit_prints_undecodable_paths(tmux_env: TmuxEnv, cli: Cli) -> None:
    odd = os.path.join(os.fsencode(tmux_env.root), b"caf\xe9.sh")
    with open(odd, "w") as fh:
        fh.write("tmux ls\n")
    result = cli("audit", tmux_env.root)
    assert result.code == 1
    assert result.out == f"{tmux_env.root}/caf\\xe9.sh:1: tmux ls\n"
