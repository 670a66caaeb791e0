"""The pytest plugin of forge-tmux's tests (loaded by tests/conftest.py): real tmux worlds, the
CLI through its real entry point, the fake Bot API, and a run that leaves the host as it found it.

Fixtures: `tmux_env` (a private tmux world), `cli` (the real CLI in it), `fake` (the fake Bot API),
`tg_env` (tmux_env pointed at the fake), `start_bot` (`forge-tmux bot` as a real process),
`venv` and `manager` (per module: a virtualenv a throw-away user can run, and that user's real
`systemd --user`), and `host_left_as_found` (per session, automatic).

Every test that asks for `tmux_env` gets its own socket root; servers it starts are recorded by pid
and killed by pid in the finalizer (inside `suppress`, so cleanup never hides the real failure).

A run leaves the host as it found it. pytest's temporary directories live in one fresh directory
of this run (not /tmp/pytest-of-USER), removed at the end. Each tmux world and that directory are
also registered with a watchdog process (hostguard.py) that removes them when this process ends
in any way, SIGKILL included. At the end of the session `host_left_as_found` fails the run when
something the suite started is still there: a tmux server of one of its worlds, a throw-away
user, a process of such a user (its `systemd --user` among them), or `/run/systemd/system` where
there was none before (the user managers get theirs in a private mount namespace; see
systemd_user.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from forge_tmux_testing import systemd_user
from forge_tmux_testing.bot_process import BotProcess
from forge_tmux_testing.cli import CliResult, run_cli
from forge_tmux_testing.fake_bot_api import TOKEN, FakeBotAPI
from forge_tmux_testing.hostguard import Guard, tmux_processes
from forge_tmux_testing.systemd_user import UserManager, e2e_venv
from forge_tmux_testing.telegram import BASE_CONFIG, CHAT, write_config
from forge_tmux_testing.tmux_world import TmuxEnv, end_world, new_world

RUN_SYSTEMD_SYSTEM = "/run/systemd/system"

# ----------------------------------------------------------------------------------------------
# Leaving the host as it was found

_GUARD: Guard | None = None
_BASETEMP: str | None = None
_TMUX_ROOTS: list[str] = []  # every TMUX_TMPDIR this session made


@pytest.hookimpl(tryfirst=True)  # before pytest's tmpdir plugin reads --basetemp
def pytest_configure(config: pytest.Config) -> None:
    global _GUARD, _BASETEMP  # noqa: PLW0603 - one watchdog per test process
    _GUARD = Guard()
    if config.option.basetemp is None:
        _BASETEMP = tempfile.mkdtemp(prefix="forge-tmux-pytest-")
        _GUARD.tree(_BASETEMP)
        config.option.basetemp = _BASETEMP


def pytest_unconfigure(config: pytest.Config) -> None:
    if _BASETEMP is not None:
        shutil.rmtree(_BASETEMP, ignore_errors=True)
    if _GUARD is not None:
        _GUARD.close()


@dataclass
class HostState:
    """What the host looked like when the session started."""

    run_systemd_system: bool = field(default_factory=lambda: os.path.lexists(RUN_SYSTEMD_SYSTEM))


def leftovers(before: HostState) -> list[str]:
    """What the suite started or created and did not undo."""
    found = []
    if not before.run_systemd_system and os.path.lexists(RUN_SYSTEMD_SYSTEM):
        found.append(f"{RUN_SYSTEMD_SYSTEM} was created during the run")
    for root in _TMUX_ROOTS:
        pids = sorted(pid for pid, _, _ in tmux_processes(root))
        if pids:
            found.append(f"tmux processes {pids} of the test world {root}")
    found += systemd_user.leftovers()
    return found


@pytest.fixture(scope="session", autouse=True)
def host_left_as_found() -> Iterator[None]:
    """Set up first, torn down last: fails the run when something started by it is still there."""
    before = HostState()
    yield
    left = leftovers(before)
    if left:
        pytest.fail("the test run left the host changed: " + "; ".join(left), pytrace=False)


# ----------------------------------------------------------------------------------------------
# The worlds


@pytest.fixture
def tmux_env() -> Iterator[TmuxEnv]:
    world = new_world()
    _TMUX_ROOTS.append(world.root)
    if _GUARD is not None:
        _GUARD.tmux_world(world.root)
    try:
        yield world
    finally:
        end_world(world)


@pytest.fixture
def cli(tmux_env: TmuxEnv) -> Callable[..., CliResult]:
    """`cli("sweep", "--json")` with the private TMUX_TMPDIR environment."""

    def call(*args: str, **kwargs: Any) -> CliResult:
        kwargs.setdefault("env", tmux_env.env)
        return run_cli(*args, **kwargs)

    return call


@pytest.fixture
def start_bot(tmux_env: TmuxEnv) -> Iterator[Callable[[str], BotProcess]]:
    started: list[BotProcess] = []
    config_dir = os.path.join(tmux_env.env["XDG_CONFIG_HOME"], "forge-tmux")
    os.makedirs(config_dir, exist_ok=True)
    with open(os.path.join(config_dir, "config.toml"), "w") as fh:
        fh.write(
            "[bot]\nallowed_user_ids = [1111]\n"
            "[health]\ntimeout = 1\n"
            '[spawn.profiles.sleeper]\ncommand = ["sleep", "1000"]\n'
        )

    def start(api_url: str) -> BotProcess:
        env = dict(
            tmux_env.env,
            FORGE_TMUX_TELEGRAM_TOKEN=TOKEN,
            FORGE_TMUX_TELEGRAM_API_URL=api_url,
        )
        log_path = os.path.join(tmux_env.root, f"bot{len(started)}.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "forge_tmux", "-v", "bot"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
            )
        bot = BotProcess(proc, log_path)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        if bot.proc.poll() is None:
            bot.proc.kill()
            bot.proc.wait()


@pytest.fixture(scope="module")
def venv() -> Path:
    return e2e_venv()


@pytest.fixture(scope="module")
def manager() -> Iterator[UserManager]:
    mgr = UserManager()
    try:
        mgr.start()
        yield mgr
    finally:
        mgr.close()


@pytest.fixture
def fake() -> Iterator[FakeBotAPI]:
    with FakeBotAPI() as api:
        yield api


@pytest.fixture
def tg_env(tmux_env: TmuxEnv, fake: FakeBotAPI) -> TmuxEnv:
    """tmux_env plus Telegram settings pointing at the fake, and short time budgets."""
    tmux_env.env.update(
        FORGE_TMUX_TELEGRAM_TOKEN=TOKEN,
        FORGE_TMUX_TELEGRAM_CHAT_ID=CHAT,
        FORGE_TMUX_TELEGRAM_API_URL=fake.base_url,
    )
    write_config(tmux_env, BASE_CONFIG)
    return tmux_env
