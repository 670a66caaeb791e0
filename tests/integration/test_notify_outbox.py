"""The outbox at its edges: a nearly full state directory (a real tmpfs of a few pages, mounted in
a private mount namespace), text that is not UTF-8, and each failure said once.

The real python-telegram-bot runs in a real `python -m forge_tmux` process and talks to
`fake_bot_api.FakeBotAPI` on 127.0.0.1 (the mount namespace shares the network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from forge_tmux import notify
from forge_tmux_testing.cli import Cli, CliResult
from forge_tmux_testing.fake_bot_api import FakeBotAPI
from forge_tmux_testing.private_mounts import needs_unshare, run_private
from forge_tmux_testing.telegram import outbox_files, unreachable, write_config
from forge_tmux_testing.tmux_world import TmuxEnv

# Two bytes a character: 3,000 characters (under Telegram's 4,096) are 6,000 bytes on disk.
BIG = "é" * 3000

# In the namespace: a tmpfs of `size` as the state directory, `queue` messages put in its outbox
# while there was room, then a filler that takes every free page but `free` bytes; then the
# command. sys.argv: state dir, environment (JSON), size, queue, free, command (JSON).
FULL_DISK = """
state, env, size, queue, free = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], \
    int(sys.argv[4]), int(sys.argv[5])
os.makedirs(state, exist_ok=True)
mount_tmpfs(state, size)
from forge_tmux.notify import Outbox
box = Outbox(os.path.join(state, 'outbox'))
for i in range(queue):
    box.put(f'queued {i}')
os.makedirs(box.directory, mode=0o700, exist_ok=True)
open(os.path.join(box.directory, '.lock'), 'w').close()
filler = os.open(os.path.join(state, 'filler'), os.O_WRONLY | os.O_CREAT, 0o600)
try:
    while os.write(filler, b'x' * 4096):
        pass
except OSError:
    pass
os.ftruncate(filler, max(0, os.fstat(filler).st_size - free))
os.close(filler)
run = subprocess.run([sys.executable, '-m', 'forge_tmux', *json.loads(sys.argv[6])],
                     capture_output=True, text=True, env=env, timeout=60)
report({'code': run.returncode, 'out': run.stdout, 'err': run.stderr,
        'outbox': sorted(os.listdir(box.directory))})
"""


def on_full_disk(
    env: TmuxEnv, *command: str, size: str = "64k", queue: int = 0, free: int = 0
) -> tuple[CliResult, list[str]]:
    seen = run_private(
        FULL_DISK,
        env.env["FORGE_TMUX_STATE_DIR"],
        json.dumps(env.env),
        size,
        str(queue),
        str(free),
        json.dumps(list(command)),
    )
    return CliResult(seen["code"], seen["out"], seen["err"]), seen["outbox"]


@needs_unshare
def test_a_message_that_does_not_fit_is_not_cut(tg_env: TmuxEnv, fake: FakeBotAPI) -> None:
    # 4 KiB free, a 6 KB message: 0.1.0 stored (and sent) the first 4 KiB and said "delivered 1".
    result, outbox = on_full_disk(tg_env, "notify", "--json", BIG, free=4096)
    assert result.code == 1, result
    assert result.json()["delivered"] == 0
    assert "No space left on device" in result.json()["error"]
    assert "No space left on device" in result.err
    assert result.err.count("\n") == 1  # said once
    assert fake.messages() == []  # nothing cut reached Telegram
    assert outbox == [".lock"]  # neither the message nor a temporary file


@needs_unshare
def test_a_full_state_directory_still_drains_the_outbox(tg_env: TmuxEnv, fake: FakeBotAPI) -> None:
    result, outbox = on_full_disk(tg_env, "notify", "--json", "new", queue=3)
    assert result.code == 0, result
    assert result.json() == {
        "delivered": 4,
        "queued": 0,
        "uncertain": 0,
        "rejected": 0,
        "error": "",
    }
    assert fake.messages() == ["queued 0", "queued 1", "queued 2", "new"]
    assert outbox == [".lock"]


@needs_unshare
def test_a_full_state_directory_and_no_network_counts_what_waits(tg_env: TmuxEnv) -> None:
    write_config(tg_env, "[telegram]\ntimeout = 1\n")
    tg_env.env.update(unreachable(tg_env))
    result, outbox = on_full_disk(tg_env, "notify", "--json", "new", queue=2)
    assert result.code == 1
    data = result.json()
    assert data["queued"] == 2  # 0.1.0 said 0 while two messages waited
    assert "No space left on device" in data["error"]
    assert len([name for name in outbox if name.endswith(".html")]) == 2
    assert not [name for name in outbox if name.startswith(".tmp")]


@needs_unshare
@pytest.mark.parametrize("command", [("sweep", "--notify"), ("boot",)])
def test_sweep_and_boot_deliver_first_on_a_full_state_directory(
    tg_env: TmuxEnv, fake: FakeBotAPI, command: tuple[str, ...]
) -> None:
    write_config(tg_env, "[telegram]\ntimeout = 5\n[sweep]\nnotify = 'always'\n")
    result, outbox = on_full_disk(tg_env, *command, "--dir", tg_env.sockdir, queue=3)
    assert result.code == 0, result
    messages = fake.messages()
    assert messages[:3] == ["queued 0", "queued 1", "queued 2"]
    assert len(messages) == 4  # and the run's own message after them
    assert outbox == [".lock"]


@pytest.mark.parametrize(
    ("argument", "stdin", "sent"),
    [
        (b"caf\xe9 \xff<b>", None, "caf\ufffd \ufffd&lt;b&gt;"),
        (b"-", b"line \xc3\x28 end\n", "line \ufffd( end\n"),
    ],
    ids=["argument", "stdin"],
)
def test_undecodable_text_is_sent_with_replacement_characters(
    tg_env: TmuxEnv, fake: FakeBotAPI, argument: bytes, stdin: bytes | None, sent: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "forge_tmux", "notify", argument],
        env=tg_env.env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr  # 0.1.0: UnicodeEncodeError or UnicodeDecodeError
    assert fake.messages() == [sent]
    assert os.listdir(os.path.join(tg_env.env["FORGE_TMUX_STATE_DIR"], "outbox")) == [".lock"]


def test_text_that_cannot_be_encoded_is_stored_and_leaves_no_temporary_file(
    tmp_path: str,
) -> None:
    box = notify.Outbox(os.path.join(tmp_path, "outbox"))
    name = box.put("\ud800 lone surrogate")  # 0.1.0: UnicodeEncodeError, a .tmp file left
    assert box.read(name) == "? lone surrogate"
    assert os.listdir(box.directory) == [name]


def test_leftover_temporary_files_of_dead_processes_are_removed(
    tg_env: TmuxEnv, fake: FakeBotAPI, cli: Cli
) -> None:
    outbox = os.path.join(tg_env.env["FORGE_TMUX_STATE_DIR"], "outbox")
    os.makedirs(outbox)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    gone = f".tmp-{0:020d}-{int(dead.stdout)}-0001.html"
    alive = f".tmp-{0:020d}-{os.getpid()}-0001.html"  # a writer that is still at work
    for name in (gone, alive):
        with open(os.path.join(outbox, name), "w") as fh:
            fh.write("half a mess")
    result = cli("notify", "hello")
    assert result.code == 0, result.err
    assert sorted(os.listdir(outbox)) == [".lock", alive]
    assert fake.messages() == ["hello"]


def test_a_failure_is_said_once(tg_env: TmuxEnv, cli: Cli) -> None:
    write_config(tg_env, "[telegram]\ntimeout = 1\n")
    result = cli("notify", "hello", env=unreachable(tg_env))
    assert result.code == 1
    assert result.out == "notify: delivered 0, 1 kept in the outbox\n"
    assert result.err.count("\n") == 1
    reason = result.err.split("Telegram: ", 1)[1].split(" (", 1)[0]  # e.g. out of time
    assert reason
    assert reason not in result.out
    assert outbox_files(tg_env)
