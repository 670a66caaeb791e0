#!/usr/bin/env python3
"""What shell completion costs the sweep's cold start: the program as shipped (completion on)
against the same program with completion switched off in-process, and `import typer`.

Per round, the three commands alternate (so machine noise hits all alike), with the same
interpreter, each a fresh process sweeping an empty private directory. Medians after a warm-up.

    .venv/bin/python scripts/bench_completion.py [--rounds 40]

Target: ratio on/off within noise (<= 1.03), and the sweep within 1.2x of `import typer`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

SHIPPED = "import sys; from forge_tmux.cli import main; sys.exit(main(sys.argv[1:]))"
# The same entry point with Typer's --install-completion/--show-completion not added.
NO_COMPLETION = (
    "import sys; from forge_tmux.cli import common; common.app._add_completion = False; "
    "from forge_tmux.cli import main; sys.exit(main(sys.argv[1:]))"
)


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd="/")
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftc", dir="/dev/shm") as empty:
        sweep = ["sweep", "--dir", empty]
        commands = {
            "sweep, completion on (shipped)": [sys.executable, "-c", SHIPPED, *sweep],
            "sweep, completion off": [sys.executable, "-c", NO_COMPLETION, *sweep],
            'python -c "import typer"': [sys.executable, "-c", "import typer"],
        }
        for argv in commands.values():  # warm-up: page cache, .pyc files
            timed(argv)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                times[name].append(timed(argv))
    med = {name: statistics.median(values) for name, values in times.items()}
    for name, value in med.items():
        print(f"{name:34} median {value:7.1f} ms  ({args.rounds} runs)")
    on, off, typer_ms = med.values()
    print(f"completion on / off: {on / off:.3f}x   (target <= 1.03: no cost)")
    print(f"sweep (shipped) / import typer: {on / typer_ms:.2f}x   (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
