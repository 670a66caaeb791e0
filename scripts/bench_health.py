#!/usr/bin/env python3
"""Benchmark: `forge-tmux health` over 100 live servers and 1,000 dead sockets, side by side with
the runbook's loop `for s in DIR/*; do tmux -S "$s" list-sessions; done`, in the same run:
medians of alternated runs after a warm-up, and their ratio (exit 1 below the target). It also
prints the door's own cost per call (`tmux.run` on one live server after another, in one process),
for this tree and, with `--compare`, for the older one.

Live servers are real tmux servers in a private TMUX_TMPDIR on /dev/shm, killed by pid at the
end; dead sockets are made by bind() without listen(). Run it with the Python that has forge-tmux
installed, e.g. `.venv/bin/python scripts/bench_health.py [--live 100] [--dead 1000]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

TARGET = 8.0  # issue 12: health with 100 live + 1,000 dead vs the runbook loop


def make_dead(path: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)  # bound, never listening: connect() is refused, as after a crash
    finally:
        sock.close()


def start_server(env: dict[str, str], name: str) -> int:
    out = subprocess.run(
        [
            "tmux",
            "-f",
            "/dev/null",
            "-L",
            name,
            "new-session",
            "-d",
            "-P",
            "-F",
            "#{pid}",
            "-s",
            "main",
            "sleep 100000",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(out.stdout.strip())


# One process asks every live server in turn through the door (`tmux.run`): the per-call cost of
# the door itself, without start-up, directory scan or thread pool. Prints ms per call (wall, CPU).
PER_CALL = """
import glob, resource, sys, time
from forge_tmux import tmux
paths = sorted(glob.glob(sys.argv[1] + "/live*"))
ask = lambda p: tmux.run(["list-sessions", "-F", "#{session_id}"], socket_path=p, timeout=5.0)
for p in paths[:5]:
    ask(p)
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
t, c = time.perf_counter(), cpu()
assert all(ask(p).ok for p in paths)
print(1000 * (time.perf_counter() - t) / len(paths), 1000 * (cpu() - c) / len(paths))
"""


def per_call(env: dict[str, str], sockdir: str) -> tuple[float, float]:
    out = timed([sys.executable, "-c", PER_CALL, sockdir], env)[1]
    wall, cpu = out.stdout.split()
    return float(wall), float(cpu)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    # cwd /: `-m forge_tmux` imports the installed package (or PYTHONPATH's), not a tree in cwd.
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd="/")
    return time.perf_counter() - started, proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=100)
    parser.add_argument("--dead", type=int, default=1000)
    parser.add_argument(
        "--compare",
        metavar="SRC",
        help="also time the forge_tmux package found in directory SRC (e.g. an older release "
        "exported with `git archive`), alternated with the others",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed runs of each (medians reported)"
    )
    args = parser.parse_args()

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    root = tempfile.mkdtemp(prefix="fb", dir=base)
    sockdir = os.path.join(root, f"tmux-{os.geteuid()}")
    os.mkdir(sockdir, 0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env.update(TMUX_TMPDIR=root, SHELL="/bin/sh", XDG_CONFIG_HOME=os.path.join(root, "cfg"))
    pids: list[int] = []
    try:
        with ThreadPoolExecutor(8) as pool:
            pids += pool.map(lambda i: start_server(env, f"live{i:03}"), range(args.live))
        for i in range(args.dead):
            make_dead(os.path.join(sockdir, f"dead{i:04}"))

        health_argv = [sys.executable, "-m", "forge_tmux", "health", "--dir", sockdir, "--json"]
        loop = f'for s in {sockdir}/*; do tmux -S "$s" list-sessions; done >/dev/null 2>&1'
        loop_argv = ["bash", "-c", loop]
        old_env = {**env, "PYTHONPATH": os.path.abspath(args.compare)} if args.compare else {}
        for _ in range(2):  # warm-up: page cache, tmux servers paged in
            timed(health_argv, env)
            timed(loop_argv, env)
            if old_env:
                timed(health_argv, old_env)
        runs: list[float] = []
        loops: list[float] = []
        olds: list[float] = []
        calls: list[tuple[float, float]] = []
        old_calls: list[tuple[float, float]] = []
        for _ in range(args.repeat):  # alternated, so drift on a shared host hits all alike
            seconds, proc = timed(health_argv, env)
            report = json.loads(proc.stdout)
            assert (report["live"], report["dead"]) == (args.live, args.dead), report["live"]
            assert report["orphan_error"] is None, report["orphan_error"]  # the check really ran
            runs.append(seconds)
            loops.append(timed(loop_argv, env)[0])
            if old_env:
                olds.append(timed(health_argv, old_env)[0])
            if args.live:
                calls.append(per_call(env, sockdir))
                if old_env:
                    old_calls.append(per_call(old_env, sockdir))

        health_seconds = statistics.median(runs)
        loop_seconds = statistics.median(loops)
        ratio = loop_seconds / health_seconds
        print(f"sockets: {args.live} live tmux servers, {args.dead} dead (in {sockdir})")
        print(f"medians of {args.repeat} alternated runs after 2 warm-ups, CLI start-up included:")
        spread = f"min {min(runs):.3f} s, max {max(runs):.3f} s"
        print(f"  forge-tmux health --json: {health_seconds:.3f} s ({spread})")
        print(f"  runbook loop (tmux -S X list-sessions per socket): {loop_seconds:.3f} s")
        if olds:
            old = statistics.median(olds)
            print(f"  forge-tmux health --json from {args.compare}: {old:.3f} s")
            print(f"  (that one is {loop_seconds / old:.1f}x faster than the loop)")
        for label, got in (("", calls), (f" from {args.compare}", old_calls)):
            if got:
                wall = statistics.median(w for w, _ in got)
                cpu = statistics.median(c for _, c in got)
                print(
                    f"  tmux.run{label}, one live server after another: {wall:.3f} ms a call "
                    f"(Python CPU {cpu:.3f} ms)"
                )
        print(f"ratio: health is {ratio:.1f}x faster than the loop (target >= {TARGET:g}x)")
        return 0 if ratio >= TARGET else 1
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
