#!/usr/bin/env python3
"""Benchmark the sweep: every figure of issue 12's sweep targets, side by side in one run.

Each figure is a ratio against a baseline measured in the same run: medians of --runs (>= 5),
the two commands alternated, after one warm-up round. Stale sockets are made fresh for every
timed run (a sweep empties its directory).

1. Per stale socket at 10,000 (tmpfs): `forge-tmux sweep` against a bare, unsafe Python loop
   (lstat, connect, unlink; no lock, no re-check), each whole process, less its own cold start
   on an empty directory. Target <= 2.5x.
2. 1,000 stale sockets, whole process: the runbook's loop
   `for s in DIR/*; do tmux -S "$s" list-sessions || rm "$s"; done` against the sweep. Target
   >= 25x.
3. 1,000 stale sockets on a disk-backed ext4 directory against the same on tmpfs. Target <= 2x.
4. 10,000 stale sockets while other processes hold 20,000 fds open, against a quiet host.
   Target <= 1.3x.
5. Cold start: `forge-tmux sweep --dir EMPTY` against `python -c "import typer"`. Target <= 1.2x.
6. Spawn's pre-flight sweep (in-process, `sweep([dir])`) of a directory with 100 live servers,
   against the same directory empty. Target +2 ms.
7. Peak RSS of `forge-tmux sweep --json` over 10,000 stale sockets. Target <= 33 MiB.

Run: .venv/bin/python scripts/bench_sweep.py [--runs 5] [--ext4 DIR]
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
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(sys.executable))
FORGE = os.path.join(HERE, "forge-tmux")

# The unsafe floor: what any janitor must at least do per socket, with none of the safety.
BARE_LOOP = r"""
import errno, os, socket, stat, sys
d = sys.argv[1]
for name in os.listdir(d):
    p = os.path.join(d, name)
    if not stat.S_ISSOCK(os.lstat(p).st_mode):
        continue
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    if s.connect_ex(p) == errno.ECONNREFUSED:
        os.unlink(p)
    s.close()
"""

# Holds N fds open (pipes' ends and /dev/null) until its stdin closes: a busy host.
FD_HOLDER = r"""
import os, resource, sys
n = int(sys.argv[1])
hard = max(n + 64, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 64, hard))
fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(n)]
print("ready", flush=True)
sys.stdin.read()
"""

# Times spawn's pre-flight sweep in-process: the directory as given, then empty.
PREFLIGHT = r"""
import os, statistics, sys, time
from forge_tmux import sweep as janitor
busy, empty, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
janitor.sweep([busy]); janitor.sweep([empty])  # warm-up
a, b = [], []
for _ in range(runs):
    t = time.perf_counter(); janitor.sweep([busy]); a.append(time.perf_counter() - t)
    t = time.perf_counter(); janitor.sweep([empty]); b.append(time.perf_counter() - t)
print(statistics.median(a) * 1000, statistics.median(b) * 1000)
"""


def make_stale(directory: str, count: int) -> str:
    os.makedirs(directory, mode=0o700)
    for i in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(os.path.join(directory, f"s{i:05d}"))
        s.close()
    return directory


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall time of one run and the child's peak RSS in KiB."""
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd="/"
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{argv[0]} exited {code}")
    return elapsed, usage.ru_maxrss


def alternate(
    runs: int, first: Callable[[], float], second: Callable[[], float]
) -> tuple[float, float]:
    """Medians of `runs` alternated runs of each, after one warm-up round."""
    first()
    second()
    a, b = [], []
    for _ in range(runs):
        a.append(first())
        b.append(second())
    return statistics.median(a), statistics.median(b)


class Fresh:
    """A new directory of N stale sockets for every timed run, under `root`."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.count = 0

    def make(self, n: int) -> str:
        self.count += 1
        return make_stale(os.path.join(self.root, f"d{self.count}"), n)


def sweep_cmd(directory: str) -> list[str]:
    return [FORGE, "sweep", "--dir", directory]


def run_sweep(directory: str) -> float:
    elapsed, _ = timed(sweep_cmd(directory))
    if os.listdir(directory):
        raise SystemExit(f"sweep left {len(os.listdir(directory))} files in {directory}")
    return elapsed


def per_socket(args: argparse.Namespace, tmpfs: Fresh, empty: str) -> None:
    n = 10_000
    bare_argv = [sys.executable, "-c", BARE_LOOP]
    bare_empty, sweep_empty = alternate(
        args.runs, lambda: timed([*bare_argv, empty])[0], lambda: timed(sweep_cmd(empty))[0]
    )
    bare, ours = alternate(
        args.runs,
        lambda: timed([*bare_argv, tmpfs.make(n)])[0],
        lambda: run_sweep(tmpfs.make(n)),
    )
    b_us, o_us = (bare - bare_empty) / n * 1e6, (ours - sweep_empty) / n * 1e6
    print(
        f"1. per stale socket at {n:,} (tmpfs): bare unsafe loop {b_us:.1f} us, "
        f"forge-tmux sweep {o_us:.1f} us -> {o_us / b_us:.2f}x (target <= 2.5x)"
    )


def runbook(args: argparse.Namespace, tmpfs: Fresh) -> None:
    n = 1_000

    def loop() -> float:
        d = tmpfs.make(n)
        script = f'for s in "{d}"/*; do tmux -S "$s" list-sessions 2>/dev/null || rm "$s"; done'
        return timed(["bash", "-c", script])[0]

    loop_s, sweep_s = alternate(args.runs, loop, lambda: run_sweep(tmpfs.make(n)))
    print(
        f"2. {n:,} stale sockets, whole process: runbook loop {loop_s * 1000:.0f} ms, "
        f"forge-tmux sweep {sweep_s * 1000:.0f} ms -> {loop_s / sweep_s:.1f}x faster "
        "(target >= 25x)"
    )


def ext4(args: argparse.Namespace, tmpfs: Fresh, disk: Fresh, fstype: str) -> None:
    n = 1_000
    on_disk, on_tmpfs = alternate(
        args.runs, lambda: run_sweep(disk.make(n)), lambda: run_sweep(tmpfs.make(n))
    )
    print(
        f"3. {n:,} stale sockets on {fstype} ({disk.root}) {on_disk * 1000:.0f} ms, on tmpfs "
        f"{on_tmpfs * 1000:.0f} ms -> {on_disk / on_tmpfs:.2f}x (target <= 2x)"
    )


def busy_host(args: argparse.Namespace, tmpfs: Fresh) -> None:
    n, fds, holders = 10_000, 20_000, 4

    def with_fds_held() -> float:
        d = tmpfs.make(n)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", FD_HOLDER, str(fds // holders)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(holders)
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "ready":
                    raise SystemExit("fd holder failed")
            return run_sweep(d)
        finally:
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait()

    busy, quiet = alternate(args.runs, with_fds_held, lambda: run_sweep(tmpfs.make(n)))
    print(
        f"4. {n:,} stale sockets with {fds:,} fds held open by {holders} other processes "
        f"{busy * 1000:.0f} ms, quiet {quiet * 1000:.0f} ms -> {busy / quiet:.2f}x "
        "(target <= 1.3x)"
    )


def cold_start(args: argparse.Namespace, empty: str) -> None:
    runs = max(args.runs, 15)  # cheap: more runs for a steadier median
    base, ours = alternate(
        runs,
        lambda: timed([sys.executable, "-c", "import typer"])[0],
        lambda: timed(sweep_cmd(empty))[0],
    )
    print(
        f"5. cold start (median of {runs}): python -c 'import typer' {base * 1000:.1f} ms, "
        f"forge-tmux sweep (empty dir) {ours * 1000:.1f} ms -> {ours / base:.2f}x "
        "(target <= 1.2x)"
    )


def preflight(args: argparse.Namespace, root: str, empty: str) -> None:
    live_dir = os.path.join(root, "live")
    os.makedirs(live_dir, mode=0o700)
    servers = []
    try:
        for i in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(os.path.join(live_dir, f"spawn-{i:03d}"))
            s.listen(8)
            servers.append(s)
        out = subprocess.run(
            [sys.executable, "-c", PREFLIGHT, live_dir, empty, str(max(args.runs, 15))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    finally:
        for s in servers:
            s.close()
    busy, bare = float(out[0]), float(out[1])
    print(
        f"6. spawn's pre-flight sweep with 100 live servers {busy:.2f} ms, empty directory "
        f"{bare:.2f} ms -> +{busy - bare:.2f} ms (target +2 ms)"
    )


def memory(tmpfs: Fresh) -> None:
    n = 10_000
    _, rss_kib = timed([FORGE, "sweep", "--json", "--dir", tmpfs.make(n)])
    _, base_kib = timed([sys.executable, "-c", "import typer"])
    print(
        f"7. peak RSS, sweep --json of {n:,} stale sockets: {rss_kib / 1024:.1f} MiB "
        f"(python -c 'import typer': {base_kib / 1024:.1f} MiB; target <= 33 MiB)"
    )


def disk_dir(given: str | None) -> tuple[str, str]:
    """A directory on a disk-backed ext4 file system, and its type as /proc/mounts says."""
    candidate = given or "/var/tmp"
    best, fstype = "", ""
    with open("/proc/mounts") as fh:
        for line in fh:
            _, mount, kind, *_ = line.split()
            inside = candidate == mount or candidate.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, fstype = mount, kind
    return candidate, fstype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ext4", help="a directory on disk-backed ext4 (default /var/tmp)")
    parser.add_argument("--only", type=int, nargs="*", help="figure numbers to run")
    args = parser.parse_args()
    args.runs = max(args.runs, 5)
    if not os.path.exists(FORGE):
        raise SystemExit(f"{FORGE} not found: run with the virtualenv's python")
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed for the runbook loop")
    disk_parent, fstype = disk_dir(args.ext4)
    root = tempfile.mkdtemp(prefix="ftbench", dir="/dev/shm")
    disk_root = tempfile.mkdtemp(prefix="ftbench", dir=disk_parent)
    only = set(args.only or range(1, 8))
    try:
        empty = os.path.join(root, "empty")
        os.makedirs(empty, mode=0o700)
        tmpfs, disk = Fresh(os.path.join(root, "t")), Fresh(disk_root)
        load = os.getloadavg()[0]
        print(f"python {sys.version.split()[0]}, {FORGE}; tmpfs {root}; load {load:.1f}")
        steps: dict[int, Callable[[], None]] = {
            1: lambda: per_socket(args, tmpfs, empty),
            2: lambda: runbook(args, tmpfs),
            3: lambda: ext4(args, tmpfs, disk, fstype),
            4: lambda: busy_host(args, tmpfs),
            5: lambda: cold_start(args, empty),
            6: lambda: preflight(args, root, empty),
            7: lambda: memory(tmpfs),
        }
        for number, step in steps.items():
            if number in only:
                step()
                shutil.rmtree(tmpfs.root, ignore_errors=True)
                shutil.rmtree(disk_root, ignore_errors=True)
                os.makedirs(disk_root, exist_ok=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(disk_root, ignore_errors=True)


if __name__ == "__main__":
    main()
