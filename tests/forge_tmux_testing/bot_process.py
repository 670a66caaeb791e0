"""`python -m forge_tmux bot` as a real process (started by the `start_bot` fixture, plugin.py)."""

from __future__ import annotations

import signal
import subprocess
import time

from forge_tmux_testing.fake_bot_api import FakeBotAPI


class BotProcess:
    def __init__(self, proc: subprocess.Popen[bytes], log_path: str) -> None:
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def stop(self, timeout: float = 10) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started


def polling(fake: FakeBotAPI, timeout: float = 20) -> None:
    fake.wait_for(lambda: bool(fake.calls_of("getUpdates")), timeout)
