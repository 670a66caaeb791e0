"""`health --output` replaces regular files only: a device node, a FIFO, a directory, a socket or
a symlink named there is refused with exit 2 and one line, and left exactly as it was."""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest

from forge_tmux.atomic import write_atomic
from forge_tmux.errors import NotRegularFile
from forge_tmux_testing.cli import Cli, CliResult
from forge_tmux_testing.private_mounts import needs_unshare, run_private
from forge_tmux_testing.processes import needs_root
from forge_tmux_testing.tmux_world import TmuxEnv


def refused(result: CliResult, path: str, kind: str) -> None:
    assert result.code == 2, result
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"forge-tmux: error: --output {path} is {kind}")


def leftovers(directory: str) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


def test_a_fifo_is_refused_and_kept(tmux_env: TmuxEnv, cli: Cli) -> None:
    fifo = os.path.join(tmux_env.root, "metrics.prom")
    os.mkfifo(fifo)
    result = cli("health", "--dir", tmux_env.sockdir, "--format", "prometheus", "--output", fifo)
    refused(result, fifo, "a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(tmux_env.root) == []


@needs_root
def test_a_device_node_is_refused_and_kept(tmux_env: TmuxEnv, cli: Cli) -> None:
    # A null device of our own: the same kind of node as /dev/null, in the test's directory.
    node = os.path.join(tmux_env.root, "null")
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    result = cli("health", "--dir", tmux_env.sockdir, "--output", node)
    refused(result, node, "a character device")
    after = os.lstat(node)
    assert stat.S_ISCHR(after.st_mode)
    assert after.st_rdev == os.makedev(1, 3)
    assert leftovers(tmux_env.root) == []


@needs_unshare
def test_dev_null_is_refused_and_still_a_device(tmux_env: TmuxEnv) -> None:
    """The real path /dev/null, in a private mount namespace whose /dev is a tmpfs with a null
    node of its own: should the refusal ever break, the host's /dev/null is not the victim."""
    script = (
        "mount_tmpfs('/dev', '64k')\n"
        "os.mknod('/dev/null', 0o666 | stat.S_IFCHR, os.makedev(1, 3))\n"
        "run = subprocess.run([sys.executable, '-m', 'forge_tmux', 'health', '--dir', sys.argv[1],"
        " '--output', '/dev/null'], capture_output=True, text=True, env=json.loads(sys.argv[2]))\n"
        "st = os.lstat('/dev/null')\n"
        "report({'code': run.returncode, 'out': run.stdout, 'err': run.stderr,"
        " 'chr': stat.S_ISCHR(st.st_mode), 'rdev': st.st_rdev, 'dev': os.listdir('/dev')})\n"
    )
    seen = run_private(script, tmux_env.sockdir, json.dumps(tmux_env.env))
    refused(CliResult(seen["code"], seen["out"], seen["err"]), "/dev/null", "a character device")
    assert seen["chr"]
    assert seen["rdev"] == os.makedev(1, 3)
    assert seen["dev"] == ["null"]  # no temporary file left beside it
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)  # and the host's, of course


@pytest.mark.parametrize("kind", ["a directory", "a socket", "a symbolic link"])
def test_other_special_files_are_refused(tmux_env: TmuxEnv, cli: Cli, kind: str) -> None:
    target = os.path.join(tmux_env.root, "out.prom")
    if kind == "a directory":
        os.mkdir(target)
    elif kind == "a socket":
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(target)
    else:
        os.symlink(os.path.join(tmux_env.root, "elsewhere"), target)
    before = os.lstat(target)
    result = cli("health", "--dir", tmux_env.sockdir, "--output", target)
    refused(result, target, kind)
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert not os.path.exists(os.path.join(tmux_env.root, "elsewhere"))


def test_write_atomic_refuses_what_appeared_meanwhile(tmp_path: str) -> None:
    fifo = os.path.join(tmp_path, "late")
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile, match="is a FIFO"):
        write_atomic(fifo, "x\n")
    assert os.listdir(tmp_path) == ["late"]
    regular = os.path.join(tmp_path, "ok")
    write_atomic(regular, "old\n")
    write_atomic(regular, "new\n")  # a regular file is replaced, as before
    with open(regular) as fh:
        assert fh.read() == "new\n"
