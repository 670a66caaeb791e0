"""The orphan proof from its parts: the kernel's sock_diag answer (`unixdiag`), /proc, and the
pure rule that turns them into orphans."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import psutil
import pytest

from forge_tmux import errors, orphans
from forge_tmux.errors import SockDiagUnavailable
from forge_tmux.orphans import (
    TmuxServer,
    find_orphans,
    proc_info,
    socket_inodes,
    suspects,
)
from forge_tmux.unixdiag import BoundSocket, bound_sockets


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A directory with a short path (sun_path holds 107 bytes), removed afterwards."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
    path = os.path.join(base, f"fo{os.getpid()}")
    os.mkdir(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def unix(path: str | bytes, listen: bool) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    if listen:
        sock.listen()
    return sock


def test_the_kernel_lists_bound_files_with_their_inodes(short_dir: str) -> None:
    listening = unix(os.path.join(short_dir, "listening with space"), listen=True)
    starting = unix(os.path.join(short_dir, "starting"), listen=False)
    odd_name = os.path.join(os.fsencode(short_dir), b"caf\xe9")  # not UTF-8
    odd = unix(odd_name, listen=True)
    unix(os.path.join(short_dir, "stale"), listen=False).close()  # a file no socket is bound to
    abstract = unix(f"\0fo-abstract-{os.getpid()}", listen=True)
    try:
        mine = {s.path: s for s in bound_sockets() if s.path.startswith(short_dir + "/")}
        assert sorted(mine) == sorted(
            [
                os.path.join(short_dir, "listening with space"),
                os.path.join(short_dir, "starting"),
                os.fsdecode(odd_name),
            ]
        )
        for sock, expect_listening in ((listening, True), (starting, False), (odd, True)):
            path = os.fsdecode(sock.getsockname())
            st = os.lstat(path)
            assert mine[path] == BoundSocket(
                path,
                st.st_dev,
                st.st_ino,
                os.fstat(sock.fileno()).st_ino,  # the socket's own inode
                expect_listening,
            )
        assert not [s for s in bound_sockets() if "fo-abstract" in s.path]
    finally:
        for sock in (listening, starting, odd, abstract):
            sock.close()


def test_socket_inodes_are_what_proc_fd_shows() -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        held = socket_inodes(os.getpid())
        assert held is not None
        assert os.fstat(sock.fileno()).st_ino in held
    finally:
        sock.close()
    assert socket_inodes(2**22 + 1) == frozenset()  # no such process: no proof


def test_proc_info_agrees_with_psutil(short_dir: str) -> None:
    # A command whose name holds ") ": /proc/PID/stat must be split at the last parenthesis.
    odd = os.path.join(short_dir, "a) b")
    shutil.copy("/bin/sleep", odd)
    child = subprocess.Popen([odd, "30"])
    try:
        info = None
        for _ in range(100):  # until exec has replaced the name
            info = proc_info(child.pid)
            if info is not None and info.name == "a) b":
                break
            time.sleep(0.01)
        assert info is not None
        assert (info.name, info.euid) == ("a) b", os.geteuid())
        assert info.state in ("S", "R")
        boot = psutil.boot_time()
        ticks = os.sysconf("SC_CLK_TCK")
        assert abs(boot + info.started / ticks - psutil.Process(child.pid).create_time()) < 0.05
    finally:
        child.kill()
        child.wait()
    assert proc_info(child.pid) is None


def test_suspects_and_orphans_need_proof(short_dir: str) -> None:
    present = os.path.join(short_dir, "present")
    replaced = os.path.join(short_dir, "replaced")
    for path in (present, replaced):
        with open(path, "w"):
            pass
    st = os.stat(present)

    def bound(path: str, sock_ino: int, ino: int, listening: bool = True) -> BoundSocket:
        return BoundSocket(path, st.st_dev, ino, sock_ino, listening)

    kernel = [
        bound(present, 11, st.st_ino),  # still its file: fine
        bound(replaced, 12, st.st_ino + 10**6),  # another inode at the path now
        bound(os.path.join(short_dir, "deleted"), 13, 5),
        bound(os.path.join(short_dir, "not-listening"), 14, 6, listening=False),
        bound("/elsewhere/x", 15, 7),  # outside the checked directories
        bound("relative", 16, 8),  # a relative name proves nothing
        bound(os.path.join(short_dir, "nobodys"), 17, 9),  # held by no tmux server
    ]
    within = frozenset({short_dir})
    found = suspects(kernel, within)
    assert [(sock.sock_ino, reason.split(" (")[0]) for sock, reason in found] == [
        (12, "path now holds another file that is not a socket"),
        (13, "socket file deleted"),
        (17, "socket file deleted"),
    ]
    assert {sock.sock_ino for sock, _ in suspects(kernel, None)} == {12, 13, 15, 17}

    servers = [TmuxServer(pid, 1000, 100 + pid) for pid in (1, 2, 3, 4)]
    held = {1: frozenset({11}), 2: frozenset({12, 99}), 3: frozenset({13}), 4: frozenset()}
    found_orphans = find_orphans(servers, found, held=lambda pid: held[pid])
    assert [(o.pid, o.path, o.inode, o.started) for o in found_orphans] == [
        (3, os.path.join(short_dir, "deleted"), 5, 103),
        (2, replaced, st.st_ino + 10**6, 102),
    ]


def test_processes_are_read_only_for_a_suspect(
    short_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common case (every listener still owns its file) costs no /proc scan at all; when
    the kernel cannot be asked, that is an error, never "no orphans"."""
    listening = unix(os.path.join(short_dir, "fine"), listen=True)
    try:

        def no_scan(uid: int | None) -> list[TmuxServer]:
            raise AssertionError("/proc scanned without a suspect")

        monkeypatch.setattr(orphans, "tmux_servers", no_scan)
        assert orphans.orphaned_servers(frozenset({short_dir}), uid=None) == []

        def denied() -> list[BoundSocket]:
            raise SockDiagUnavailable("netlink (sock_diag) unavailable: denied")

        monkeypatch.setattr(orphans, "bound_sockets", denied)
        with pytest.raises(errors.OrphansUnknown, match="sock_diag"):
            orphans.orphaned_servers(frozenset({short_dir}), uid=None)
    finally:
        listening.close()


def test_a_server_that_cannot_be_inspected_makes_orphans_unknown(
    short_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener's file is gone and the one tmux server that may hold it hides its fds (a
    private user namespace, say): that is "unknown", never "no orphans"."""
    gone = BoundSocket(os.path.join(short_dir, "gone"), 1, 2, 77, listening=True)
    monkeypatch.setattr(orphans, "bound_sockets", lambda: [gone])
    monkeypatch.setattr(orphans, "tmux_servers", lambda uid: [TmuxServer(42, 1000, 5)])
    fds: dict[int, frozenset[int] | None] = {42: None}
    monkeypatch.setattr(orphans, "socket_inodes", lambda pid: fds[pid])
    within = frozenset({short_dir})

    with pytest.raises(errors.OrphansUnknown, match="tmux server"):
        orphans.orphaned_servers(within, uid=None)

    fds[42] = frozenset({77})  # readable, and it holds the socket: an orphan
    assert [(o.pid, o.path) for o in orphans.orphaned_servers(within, uid=None)] == [
        (42, gone.path)
    ]
    fds[42] = frozenset({78})  # readable, holds something else: no proof, no orphan
    assert orphans.orphaned_servers(within, uid=None) == []
