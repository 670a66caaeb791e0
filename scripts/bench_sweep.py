#!/usr/bin/env python3
"""Benchmark the sweep against the runbook's loop, its cold start, and its peak memory.

Everything is measured side by side in one run, on tmpfs (/dev/shm: creating files on this
machine's /tmp disk is slow, and tmux's lock protocol creates a file per socket):

1. N stale sockets (default 1,000 and 10,000), in two identical directories: the runbook's loop
   `for s in DIR/*; do tmux -S "$s" list-sessions || rm "$s"; done` on one, `forge-tmux sweep`
   on the other. Both must leave the directory empty (no lock files behind).
2. Cold start: `forge-tmux sweep --dir EMPTY` against `python -c "import typer"`, same interpreter.
3. Peak memory (max RSS) of `forge-tmux sweep` over 10,000 stale sockets.

Run: .venv/bin/python scripts/bench_sweep.py [--sizes 1000 10000] [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(sys.executable))
FORGE = os.path.join(HERE, "forge-tmux")


def make_stale(directory: str, count: int) -> None:
    os.makedirs(directory, mode=0o700)
    here = os.getcwd()
    os.chdir(directory)
    try:
        for i in range(count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(f"s{i:05d}")
            s.close()
    finally:
        os.chdir(here)


def timed(argv: list[str], **kwargs: object) -> tuple[float, int]:
    """Wall time of one run and the child's peak RSS in KiB."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[0]} exited {proc.returncode}")
    return elapsed, usage.ru_maxrss


def bench_sizes(root: str, sizes: list[int]) -> None:
    env = dict(os.environ)
    env.pop("TMUX", None)
    print("stale sockets   runbook loop    forge-tmux sweep   speed-up   left behind  (medians)")
    for n in sizes:
        # Median of 3 fresh copies for each side where that costs little; one run at 10,000+.
        loops, sweeps = [], []
        for attempt in range(3 if n <= 2000 else 1):
            loop_dir = os.path.join(root, f"loop-{n}-{attempt}")
            sweep_dir = os.path.join(root, f"sweep-{n}-{attempt}")
            make_stale(loop_dir, n)
            make_stale(sweep_dir, n)
            # The runbook's loop, verbatim but for silencing tmux's "no server running" lines.
            script = (
                f'for s in "{loop_dir}"/*; do tmux -S "$s" list-sessions 2>/dev/null '
                '|| rm "$s"; done'
            )
            loops.append(timed(["bash", "-c", script], env=env)[0])
            sweeps.append(timed([FORGE, "sweep", "--dir", sweep_dir], env=env)[0])
            left = len(os.listdir(sweep_dir))
            if left:
                raise SystemExit(f"sweep left {left} files in {sweep_dir}")
        loop_s, sweep_s = statistics.median(loops), statistics.median(sweeps)
        print(
            f"{n:>13,}   {loop_s * 1000:>9.0f} ms   {sweep_s * 1000:>13.0f} ms"
            f"   {loop_s / sweep_s:>7.1f}x   0 files"
        )


def bench_cold_start(root: str, runs: int) -> None:
    empty = os.path.join(root, "empty")
    os.makedirs(empty, mode=0o700)
    baseline_argv = [sys.executable, "-c", "import typer"]
    sweep_argv = [FORGE, "sweep", "--dir", empty]
    base, ours = [], []
    for _ in range(3):  # warm the page cache for both
        timed(baseline_argv)
        timed(sweep_argv)
    for _ in range(runs):  # interleaved, so drift hits both alike
        base.append(timed(baseline_argv)[0])
        ours.append(timed(sweep_argv)[0])
    b, o = statistics.median(base), statistics.median(ours)
    print(
        f"cold start (median of {runs}): python -c 'import typer' {b * 1000:.1f} ms, "
        f"forge-tmux sweep (empty dir) {o * 1000:.1f} ms -> {o / b:.2f}x (target <= 1.3x)"
    )


def bench_memory(root: str, n: int) -> None:
    directory = os.path.join(root, f"mem-{n}")
    make_stale(directory, n)
    _, rss_kib = timed([FORGE, "sweep", "--json", "--dir", directory])
    _, base_kib = timed([sys.executable, "-c", "import typer"])
    print(
        f"peak memory, sweep of {n:,} stale sockets with --json: {rss_kib / 1024:.1f} MiB "
        f"(python -c 'import typer': {base_kib / 1024:.1f} MiB; target <= 40 MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if not os.path.exists(FORGE):
        raise SystemExit(f"{FORGE} not found: run with the virtualenv's python")
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed for the runbook loop")
    root = tempfile.mkdtemp(prefix="ftbench", dir="/dev/shm")
    try:
        print(f"python {sys.version.split()[0]}, {FORGE}, tmpfs {root}")
        bench_sizes(root, args.sizes)
        bench_cold_start(root, args.runs)
        bench_memory(root, max(args.sizes))
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
