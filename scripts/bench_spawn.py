#!/usr/bin/env python3
"""How much the spawn harness costs: `forge-tmux spawn` against what it replaces, side by side.

Per round, alternating so that machine noise hits all alike, with the same interpreter:
- harness: `python -m forge_tmux spawn NAME -- sleep 1000` (pre-flight sweep, already-running
  check, creation, verification);
- baseline (the issue's): a bare `tmux -L x new-session -d` plus `python -c "import typer"`;
- naive CLI: a Typer command with the same arguments that only runs `tmux new-session`: the
  cost of Typer's dispatch, which `import typer` alone does not show (typer 0.29 imports
  pydantic to coerce option values, ~40 ms; the project pins typer below 0.29 for that reason),
  so harness minus naive is what the harness itself adds.
Everything happens in a private TMUX_TMPDIR; every server started is killed by pid afterwards.

    .venv/bin/python scripts/bench_spawn.py [--rounds 30] [--root /dev/shm]

Target: the harness adds at most 50 ms (median against median).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BUDGET_MS = 50.0

NAIVE_CLI = """
import subprocess
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)


@app.command()
def spawn(
    name: str,
    command: Annotated[list[str] | None, typer.Argument()] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    argv = ["tmux", "-L", "n-" + name, "new-session", "-d", "-s", name, "--", *(command or [])]
    subprocess.run(argv, check=True)


app()
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd="/")
    return (time.perf_counter() - started) * 1000


def server_pids(tmux: str, root: str, env: dict[str, str]) -> list[int]:
    """The pids of the servers behind the sockets of our private socket directory."""
    sockdir = os.path.join(root, f"tmux-{os.geteuid()}")
    pids = []
    for name in os.listdir(sockdir) if os.path.isdir(sockdir) else ():
        shown = subprocess.run(
            [tmux, "-S", os.path.join(sockdir, name), "display-message", "-p", "#{pid}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if shown.returncode == 0 and shown.stdout.strip().isdigit():
            pids.append(int(shown.stdout))
    return pids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--root", default="/tmp", help="where the private TMUX_TMPDIR is made (e.g. /dev/shm)"
    )
    args = parser.parse_args()
    tmux = shutil.which("tmux")
    if tmux is None:
        print("tmux not found", file=sys.stderr)
        return 2
    root = tempfile.mkdtemp(prefix="fb", dir=args.root)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env["TMUX_TMPDIR"] = root
    env["XDG_CONFIG_HOME"] = os.path.join(root, "config")  # defaults, whatever the host has
    python = sys.executable
    naive_cli = os.path.join(root, "naive_cli.py")
    with open(naive_cli, "w") as fh:
        fh.write(NAIVE_CLI)
    harness: list[float] = []
    baseline: list[float] = []
    naive: list[float] = []
    try:
        # One warm-up of each, not counted (page cache, first tmux-UID directory creation).
        timed([tmux, "-L", "warm", "new-session", "-d", "sleep 1000"], env)
        timed([python, "-m", "forge_tmux", "spawn", "warm", "--", "sleep", "1000"], env)
        for n in range(args.rounds):
            harness.append(
                timed([python, "-m", "forge_tmux", "spawn", f"h{n}", "--", "sleep", "1000"], env)
            )
            baseline.append(
                timed([tmux, "-L", f"x{n}", "new-session", "-d", "sleep 1000"], env)
                + timed([python, "-c", "import typer"], env)
            )
            naive.append(timed([python, naive_cli, f"n{n}", "--", "sleep", "1000"], env))
    finally:
        for pid in server_pids(tmux, root, env):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
    harness_ms = statistics.median(harness)
    baseline_ms = statistics.median(baseline)
    naive_ms = statistics.median(naive)
    print(f"rounds: {args.rounds}, python {sys.version.split()[0]}, {tmux}, TMUX_TMPDIR {root}")
    print(f"  forge-tmux spawn                                 median {harness_ms:6.1f} ms")
    print(f"  tmux new-session -d + python -c 'import typer'   median {baseline_ms:6.1f} ms")
    print(f"  naive Typer CLI running tmux new-session -d      median {naive_ms:6.1f} ms")
    print(f"overhead vs the issue's baseline: {harness_ms - baseline_ms:+6.1f} ms")
    print(f"overhead vs the naive Typer CLI:  {harness_ms - naive_ms:+6.1f} ms (harness alone)")
    ok = harness_ms - baseline_ms <= BUDGET_MS
    print(f"harness {'within' if ok else 'OVER'} the {BUDGET_MS:.0f} ms budget")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
