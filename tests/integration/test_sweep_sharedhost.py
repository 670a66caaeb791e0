"""A shared host: root's own tmux must not make a user's sweep wait (forge_tmux/locks.py).

Root's tmux processes are the usual case on a fleet host, and their fds are unreadable to a user.
Facts visible without privilege rule them out of the open-to-flock gap on the user's lock file;
a root process that really holds the user's lock file open is still waited for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from forge_tmux import sweep as core
from forge_tmux_testing.cli import CliResult
from forge_tmux_testing.processes import as_user, needs_root, wait_for
from forge_tmux_testing.tmux_clients import MODEL_CLIENT, start_model_client, tmux_named_python
from forge_tmux_testing.tmux_world import TmuxEnv, make_stale_socket, needs_tmux

# A uid of this test run alone (no passwd entry needed): other tests on this machine run tmux
# as nobody, and a tmux client of the sweeping uid whose fds are unreadable is rightly waited for.
USER_UID = 61000 + os.getpid() % 1000
TMUX = shutil.which("tmux") or "tmux"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["tmux", "-L", "s", "attach"], ("L", "s")),
        (["tmux", "-Ls", "attach"], ("L", "s")),
        (["tmux", "-uS", "/x/y", "new"], ("S", "/x/y")),
        (["tmux", "-L", "a", "-S", "b"], ("S", "b")),  # -S wins over -L, in either order
        (["tmux", "-S", "b", "-L", "a"], ("S", "b")),
        (["tmux", "-f", "/dev/null", "new", "-L", "x"], ("", "")),  # options end at the command
        (["tmux", "--", "-L", "x"], ("", "")),
        (["tmux", "-c", "-L x"], ("", "")),  # an option's argument is not an option
        (["tmux"], ("", "")),
        (["tmux", "-X", "-L", "x"], None),  # unknown option: cannot be sure what follows
        (["tmux", "-L"], None),
    ],
)
def test_tmux_command_lines_are_read_like_tmux_getopt(
    argv: list[str], expected: tuple[str, str] | None
) -> None:
    from forge_tmux.locks import tmux_socket_option  # noqa: PLC0415 - new in 0.2

    assert tmux_socket_option(argv) == expected


@pytest.fixture
def user_dir(tmux_env: TmuxEnv) -> str:
    """the user's tmux directory with one stale socket `s` in it."""
    sockdir = os.path.join(tmux_env.root, f"tmux-{USER_UID}")
    os.mkdir(sockdir, 0o700)
    make_stale_socket(os.path.join(sockdir, "s"))
    os.chown(os.path.join(sockdir, "s"), USER_UID, USER_UID)
    os.chown(sockdir, USER_UID, USER_UID)
    return sockdir


@contextlib.contextmanager
def roots_own_tmux() -> Iterator[list[int]]:
    """Root's tmux servers in a private TMUX_TMPDIR, one named like the user's stale socket, with
    control-mode clients attached by -L and by -S (a private 0700 TMUX_TMPDIR). Yields their
    pids; stops them by pid."""
    tmpdir = tempfile.mkdtemp(prefix="ftroot", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env["TMUX_TMPDIR"] = tmpdir
    pids: list[int] = []
    clients: list[subprocess.Popen[bytes]] = []
    try:
        for label in ("s", "other"):
            out = subprocess.run(
                [
                    TMUX,
                    "-f",
                    "/dev/null",
                    "-L",
                    label,
                    "new-session",
                    "-d",
                    "-P",
                    "-F",
                    "#{pid}",
                    "sleep 1000",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout
            pids.append(int(out.split()[0]))
        for argv in (
            [TMUX, "-L", "s", "-C", "attach"],
            [TMUX, "-S", os.path.join(tmpdir, "tmux-0", "other"), "-C", "attach"],
            # Named like the user's socket, below a directory the user may not search.
            [TMUX, "-S", os.path.join(tmpdir, "tmux-0", "s"), "-C", "attach"],
        ):
            client = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            clients.append(client)
            pids.append(client.pid)

        def attached() -> bool:
            names = []
            for pid in pids:
                with open(f"/proc/{pid}/comm") as fh:
                    names.append(fh.read().strip())
            return names.count("tmux: client") == 3

        wait_for(attached)
        yield pids
    finally:
        for client in clients:
            client.kill()
            client.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        shutil.rmtree(tmpdir, ignore_errors=True)


def sweep_as_user(sockdir: str, timeout: float) -> dict[str, object]:
    def run() -> dict[str, object]:
        started = time.monotonic()
        result = core.sweep([sockdir], timeout=timeout)
        return {
            "elapsed": time.monotonic() - started,
            "removed": result.removed,
            "waits": getattr(result, "lock_waits", None),
            "timed_out": result.lock_waits_timed_out,
        }

    outcome: dict[str, object] = as_user(USER_UID, run)
    return outcome


@needs_root
@needs_tmux
def test_roots_own_tmux_costs_a_users_sweep_no_wait(tmux_env: TmuxEnv, user_dir: str) -> None:
    with roots_own_tmux() as pids:
        outcome = sweep_as_user(user_dir, timeout=3)
        assert all(os.path.exists(f"/proc/{pid}") for pid in pids)  # still there throughout
    assert outcome["removed"] == 1, outcome
    assert isinstance(outcome["elapsed"], float) and outcome["elapsed"] < 1.5, outcome
    assert outcome["waits"] == [], outcome
    assert os.listdir(user_dir) == []


@needs_root
def test_a_root_process_holding_the_users_lock_file_is_still_waited_for(
    tmux_env: TmuxEnv, user_dir: str
) -> None:
    """Root's model client (named tmux, no -S/-L: its socket may come from $TMUX, which the user
    cannot read) has opened the user's lock file and not locked it yet. The sweep must hold the
    retired lock until the client waits on it, so the client never locks a ghost."""
    lock = os.path.join(user_dir, "s.lock")
    # the user's own lock file (a client of the user's made it), which root's process then opens.
    os.close(os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chown(lock, USER_UID, USER_UID)
    client = subprocess.Popen(
        [tmux_named_python(tmux_env.root), "-c", MODEL_CLIENT, lock],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    outcome: dict[str, object] = {}
    sweeper = threading.Thread(target=lambda: outcome.update(sweep_as_user(user_dir, 20)))
    try:
        assert client.stdout is not None and client.stdin is not None
        assert client.stdout.readline().strip() == "opened"
        sweeper.start()
        # The sweep removes the socket and the lock file's name, then holds the lock ...
        wait_for(lambda: os.listdir(user_dir) == [])
        time.sleep(0.3)
        assert sweeper.is_alive(), "released the lock while root's client was in the gap"
        # ... until the client, resuming, finds the lock held and waits on it.
        client.stdin.write("go\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "waited"
        sweeper.join(timeout=20)
    finally:
        client.kill()
        client.wait()
        sweeper.join(timeout=30)
    assert outcome["removed"] == 1, outcome
    assert outcome["timed_out"] == 0, outcome
    waits = outcome["waits"]
    assert isinstance(waits, list)
    assert any(f"pid {client.pid}:" in line and "$TMUX" in line for line in waits), waits


def test_verbose_names_the_pid_and_the_reason_of_every_wait(
    tmux_env: TmuxEnv, cli: Callable[..., CliResult]
) -> None:
    """A wait is never silent with --verbose; without it, only the timeout's warning shows."""
    sock = tmux_env.path("s")
    make_stale_socket(sock)
    client = start_model_client(sock + ".lock")
    try:
        result = cli("--verbose", "sweep", "--timeout", "0.3")
    finally:
        client.kill()
        client.wait()
    assert result.code == 0, result.err
    expected = f"pid {client.pid}: has a retired lock file open and is not waiting on it"
    assert expected in result.err, result.err
