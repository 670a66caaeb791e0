"""Run a Python script in a private mount namespace (`unshare --mount`), for tests that need a
filesystem of their own (a tiny tmpfs to fill, a /dev of their own). Whatever the script
mounts disappears with the namespace when it exits, whether the test passes, fails or is killed:
nothing to clean up on the host, nothing any other process can see."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

needs_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare (a private mount namespace)",
)

# Prepended to every script: `mount_tmpfs(path, size)` and `report(obj)` (the JSON answer).
PRELUDE = """\
import json, os, stat, subprocess, sys
def mount_tmpfs(path, size):
    subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size},mode=755', 'tmpfs', path],
                   check=True)
def report(obj):
    print(json.dumps(obj))
"""


def run_private(script: str, *args: str, timeout: float = 120) -> Any:
    """Run `script` (with PRELUDE) in a private mount namespace; `args` are its sys.argv[1:].
    Returns what it passed to `report`."""
    argv = ["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-c"]
    proc = subprocess.run(
        [*argv, PRELUDE + script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])
