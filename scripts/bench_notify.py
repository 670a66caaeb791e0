"""How long `forge-tmux notify` holds a job when Telegram cannot be reached, three ways.

- refused: nothing listens on the port (network up, API down): retried with back-off.
- no SYN answer: a listener whose backlog is full, so the kernel drops new connections (a
  black-holed route): bounded by `telegram.timeout` (default 20 s).
- silent: the server accepts and reads the request but never answers (a read timeout: the
  message may have arrived, so it is set aside, never resent): one request timeout (10 s).

Each run uses a fresh state directory; the outbox it leaves is reported. Nothing leaves 127.0.0.1.
Usage: .venv/bin/python scripts/bench_notify.py [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

TOKEN = "123456789:AAHbenchTokenNotRealAtAll_abcdefghijk"  # noqa: S105 - a fake, never sent out


@contextlib.contextmanager
def refused() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


@contextlib.contextmanager
def no_syn_answer() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the backlog; further SYNs are dropped
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        fillers.append(client)
    try:
        yield port
    finally:
        for client in fillers:
            client.close()
        server.close()


@contextlib.contextmanager
def silent() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                held.append(conn)  # read nothing, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def run(port: int, timeout: float | None) -> tuple[float, int, list[str]]:
    with tempfile.TemporaryDirectory() as root:
        config_home = os.path.join(root, "config")
        if timeout is not None:
            os.makedirs(os.path.join(config_home, "forge-tmux"))
            with open(os.path.join(config_home, "forge-tmux", "config.toml"), "w") as fh:
                fh.write(f"[telegram]\ntimeout = {timeout}\n")
        env = dict(
            os.environ,
            NO_PROXY="127.0.0.1",
            XDG_CONFIG_HOME=config_home,
            FORGE_TMUX_STATE_DIR=os.path.join(root, "state"),
            FORGE_TMUX_TELEGRAM_TOKEN=TOKEN,
            FORGE_TMUX_TELEGRAM_CHAT_ID="1",
            FORGE_TMUX_TELEGRAM_API_URL=f"http://127.0.0.1:{port}/bot",
        )
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "forge_tmux", "notify", "bench"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.monotonic() - started
        outbox = os.path.join(root, "state", "outbox")
        left = [
            os.path.relpath(os.path.join(d, f), outbox)
            for d, _, files in os.walk(outbox)
            for f in files
            if f.endswith(".html")
        ]
        return took, proc.returncode, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=None, help="telegram.timeout to set")
    args = parser.parse_args()
    print(f"{'Telegram':<16}{'notify took':>12}  exit  left in the outbox")
    for name, situation in (("refused", refused), ("no SYN answer", no_syn_answer),
                            ("silent server", silent)):  # fmt: skip
        with situation() as port:
            took, code, left = run(port, args.timeout)
        print(f"{name:<16}{took:>10.2f} s  {code:>4}  {', '.join(left) or '-'}")


if __name__ == "__main__":
    main()
