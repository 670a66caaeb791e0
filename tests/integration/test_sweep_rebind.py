"""A server that binds its path without tmux's lock while a sweep removes the stale file there.

tmux re-binds its socket on SIGUSR1 (`forge-tmux recover`, or an operator): it unlinks whatever
is at its path and binds a new socket, taking no lock, possibly getting the very inode number the
stale file had. The sweep moves each candidate to a private name before its last checks, so the
new socket is either never touched (bound after the move) or put back (bound before it).
Deterministic: the re-bind is injected at the exact step, in-process.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from forge_tmux import sweep as core
from forge_tmux.locks import HeldLocks
from forge_tmux.probe import SocketState, bound_files, probe_path
from forge_tmux_testing.tmux_world import TmuxEnv, make_stale_socket


@pytest.fixture
def listeners() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def rebind(path: str, listeners: list[socket.socket]) -> None:
    """What a tmux server does on SIGUSR1: unlink whatever is at the path, bind, listen."""
    os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    listeners.append(server)


def listen_at(path: str, listeners: list[socket.socket]) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    listeners.append(server)


def leftovers(directory: str) -> list[str]:
    return [n for n in os.listdir(directory) if n.startswith(core.QUARANTINE_PREFIX)]


def test_rebind_after_the_move_is_never_touched(
    tmux_env: TmuxEnv, monkeypatch: pytest.MonkeyPatch, listeners: list[socket.socket]
) -> None:
    path = tmux_env.path("s")
    make_stale_socket(path)

    def kernel_after_a_rebind() -> frozenset[tuple[int, int]] | None:
        # The stale file has been moved away; the server now binds a new socket at the path.
        assert not os.path.lexists(path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(8)
        listeners.append(server)
        return bound_files()

    monkeypatch.setattr(core, "bound_files", kernel_after_a_rebind)
    result = core.sweep([tmux_env.sockdir])
    (entry,) = result.sockets
    assert entry.removed  # the stale file, moved away, was removed ...
    assert probe_path(path).state is SocketState.LIVE  # ... and the new socket never touched
    assert leftovers(tmux_env.sockdir) == []


@pytest.mark.parametrize("kernel", ["sock_diag", "no sock_diag"])
def test_rebind_before_the_move_is_put_back(
    tmux_env: TmuxEnv,
    monkeypatch: pytest.MonkeyPatch,
    listeners: list[socket.socket],
    kernel: str,
) -> None:
    path = tmux_env.path("s")
    make_stale_socket(path)
    recheck = core._lock_and_recheck

    def recheck_then_rebind(
        dir_fd: int,
        dir_path: str,
        name: str,
        st: os.stat_result,
        run: core._Run,
        shared: core._BatchLock,
    ) -> tuple[core.SocketResult | None, int, os.stat_result | None]:
        verdict = recheck(dir_fd, dir_path, name, st, run, shared)
        rebind(path, listeners)  # between the re-check under the lock and the move
        return verdict

    monkeypatch.setattr(core, "_lock_and_recheck", recheck_then_rebind)
    if kernel == "no sock_diag":
        monkeypatch.setattr(core, "bound_files", lambda: None)  # the connect check must catch it
    result = core.sweep([tmux_env.sockdir])
    (entry,) = result.sockets
    assert not entry.removed
    assert entry.state is SocketState.SKIPPED
    assert "kept" in entry.reason
    assert probe_path(path).state is SocketState.LIVE
    # It is the server's own socket that is back at the path: it accepts there.
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    client.close()
    assert leftovers(tmux_env.sockdir) == []


def test_many_batches_leave_nothing_behind(
    tmux_env: TmuxEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "_batch_limits", lambda: (7, 7))
    for i in range(40):
        make_stale_socket(tmux_env.path(f"s{i:02d}"))
    result = core.sweep([tmux_env.sockdir])
    assert result.removed == 40
    assert os.listdir(tmux_env.sockdir) == []


def test_live_servers_cost_no_connect(tmux_env: TmuxEnv, listeners: list[socket.socket]) -> None:
    """The kernel's one dump says which files listen: a live server is not connected to (each
    connect would sit in its accept queue until it notices and drops it)."""
    listen_at(tmux_env.path("live"), listeners)
    make_stale_socket(tmux_env.path("stale"))
    (server,) = listeners
    server.setblocking(False)
    result = core.sweep([tmux_env.sockdir])
    states = {os.path.basename(s.path): (s.state, s.removed) for s in result.sockets}
    assert states == {"live": (SocketState.LIVE, False), "stale": (SocketState.STALE, True)}
    with pytest.raises(BlockingIOError):
        server.accept()  # nobody knocked


def test_without_netlink_connect_decides_everything(
    tmux_env: TmuxEnv, monkeypatch: pytest.MonkeyPatch, listeners: list[socket.socket]
) -> None:
    """A sandbox that denies AF_NETLINK: classification and the last check fall back on
    connect(), with the same verdicts."""
    monkeypatch.setattr(core, "unix_bindings", lambda: None)
    monkeypatch.setattr(core, "bound_files", lambda: None)
    listen_at(tmux_env.path("live"), listeners)
    make_stale_socket(tmux_env.path("stale"))
    result = core.sweep([tmux_env.sockdir])
    states = {os.path.basename(s.path): (s.state, s.removed) for s in result.sockets}
    assert states == {"live": (SocketState.LIVE, False), "stale": (SocketState.STALE, True)}
    listeners[0].setblocking(False)
    conn, _ = listeners[0].accept()  # connect() was what judged it live
    conn.close()


def test_existing_lock_files_keep_a_batch_within_its_fd_budget(
    tmux_env: TmuxEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An existing lock file is held through its own fd: those split batches, missing ones do
    not (the batch's own lock file is linked under their names)."""
    monkeypatch.setattr(core, "_batch_limits", lambda: (100, 3))
    sizes: list[int] = []
    real = core._remove_batch

    def counting(
        dir_fd: int,
        dir_path: str,
        batch: list[tuple[str, os.stat_result]],
        held: HeldLocks,
        run: core._Run,
    ) -> list[core.SocketResult]:
        sizes.append(len(batch))
        return real(dir_fd, dir_path, batch, held, run)

    monkeypatch.setattr(core, "_remove_batch", counting)
    for i in range(10):
        make_stale_socket(tmux_env.path(f"s{i}"))
        if i < 7:
            with open(tmux_env.path(f"s{i}.lock"), "w"):
                pass
    result = core.sweep([tmux_env.sockdir])
    assert result.removed == 10
    assert sizes == [3, 3, 4]
    assert os.listdir(tmux_env.sockdir) == []
