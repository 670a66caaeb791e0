"""How fast `forge-tmux bot` starts, answers and stops, against the fake Bot API on 127.0.0.1.

Figures: start to its first getUpdates; a /help round trip; SIGTERM to exit while the API
answers; SIGTERM to exit while the API has gone silent (the library's last getUpdates then waits
for its read timeout, which the bot keeps at 5 s).
Usage: .venv/bin/python scripts/bench_bot.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
# The tests' fake Bot API, found through the path set above.
from forge_tmux_testing.fake_bot_api import TOKEN, FakeBotAPI


def start(fake: FakeBotAPI, root: str) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        NO_PROXY="127.0.0.1",
        FORGE_TMUX_TELEGRAM_TOKEN=TOKEN,
        FORGE_TMUX_TELEGRAM_API_URL=fake.base_url,
        FORGE_TMUX_BOT_ALLOWED_USERS="1111",
        XDG_CONFIG_HOME=os.path.join(root, "config"),
        FORGE_TMUX_STATE_DIR=os.path.join(root, "state"),
        TMUX_TMPDIR=root,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "forge_tmux", "bot"],
        env=env,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> tuple[float, int]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    return time.monotonic() - started, code


def main() -> None:
    with tempfile.TemporaryDirectory() as root, FakeBotAPI() as fake:
        started = time.monotonic()
        proc = start(fake, root)
        fake.wait_for(lambda: bool(fake.calls_of("getUpdates")), 30)
        print(f"start to first getUpdates     {time.monotonic() - started:6.2f} s")
        asked = time.monotonic()
        fake.add_command("/help", user_id=1111)
        fake.wait_messages(1)
        print(f"/help round trip              {time.monotonic() - asked:6.3f} s")
        took, code = stop(proc)
        print(f"SIGTERM to exit (API up)      {took:6.2f} s  exit {code}")

        proc = start(fake, root)
        fake.wait_for(lambda: len(fake.calls_of("getUpdates")) >= 3, 30)
        fake.slow("getUpdates", 60, times=10)
        time.sleep(6)  # the poll in flight returns; the next one hangs
        took, code = stop(proc)
        print(f"SIGTERM to exit (API silent)  {took:6.2f} s  exit {code}")


if __name__ == "__main__":
    main()
