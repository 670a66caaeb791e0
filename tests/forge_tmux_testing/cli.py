"""The command line as operators run it: `python -m forge_tmux ARGS`, everything captured."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., CliResult]
"""The `cli` fixture: `run_cli` with the test's private environment unless `env=` is given."""


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    python: str | None = None,
    input: str | None = None,
) -> CliResult:
    """Run `python -m forge_tmux ARGS` (the real entry point) and capture everything."""
    proc = subprocess.run(
        [python or sys.executable, "-m", "forge_tmux", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        input=input,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
