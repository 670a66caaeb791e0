#!/usr/bin/env python3
"""Benchmark the CLI's start-up: `--help`, `--version` and a sweep of an empty directory, each
against `python -c "import typer"` (the floor of any Typer program), with the same interpreter.

The commands are alternated run by run (so drift on a shared machine hits all alike) after a
warm-up that fills the page cache; the figures are medians, the ratios come from this one run.

Run: .venv/bin/python scripts/bench_cli.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(sys.executable))
FORGE = os.path.join(HERE, "forge-tmux")
TARGET = 1.2


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs of each (at least 5)")
    parser.add_argument(
        "--compare",
        metavar="SRC",
        help="also time --help and --version of the forge_tmux package in directory SRC (e.g. "
        "an older release exported with `git archive`), alternated with the others",
    )
    args = parser.parse_args()
    runs = max(5, args.runs)

    root = tempfile.mkdtemp(prefix="fb-cli-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        empty = os.path.join(root, "empty")
        os.mkdir(empty, 0o700)
        env = {**os.environ, "XDG_CONFIG_HOME": os.path.join(root, "cfg"), "TMUX_TMPDIR": root}
        commands = {
            'python -c "import typer"': [sys.executable, "-c", "import typer"],
            "forge-tmux --version": [FORGE, "--version"],
            "forge-tmux --help": [FORGE, "--help"],
            "forge-tmux sweep (empty dir)": [FORGE, "sweep", "--dir", empty],
        }
        envs = dict.fromkeys(commands, env)
        if args.compare:
            old_env = {**env, "PYTHONPATH": os.path.abspath(args.compare)}
            for flag in ("--version", "--help"):
                name = f"{args.compare}: {flag}"
                commands[name], envs[name] = [FORGE, flag], old_env
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(3):  # warm-up, not counted
            for name, argv in commands.items():
                timed(argv, envs[name])
        for _ in range(runs):
            for name, argv in commands.items():
                times[name].append(timed(argv, envs[name]))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians['python -c "import typer"']
    print(f"start-up, medians of {runs} alternated runs (target <= {TARGET}x the baseline)")
    worst = 0.0
    for name, median in medians.items():
        ratio = median / base
        if name.startswith("forge-tmux"):
            worst = max(worst, ratio)
        print(f"  {name:36} {median * 1000:7.1f} ms  {ratio:5.2f}x")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
