"""The one door to the kernel's sock_diag for unix sockets (NETLINK_SOCK_DIAG, `ss -x` without ss).

One netlink dump lists every unix socket of this network namespace in the states asked for, with
the path it was bound to (UDIAG_SHOW_NAME), the device and inode of the file that bind() created
(UDIAG_SHOW_VFS) and its own inode, the number `/proc/PID/fd` shows as `socket:[N]`. That is what
`ss -xlpe` prints, at the cost of one syscall round trip instead of a process start, and
without parsing text whose columns change between iproute2 versions.

Only the kernel's answer is used: no pid comes from here (the kernel does not say which process
holds a socket; `orphans` asks /proc/PID/fd of the few processes that matter). When netlink is
unavailable (a sandbox without AF_NETLINK, an old kernel), `SockDiagUnavailable` is raised and the
caller treats the question as unanswered, never as "no socket is bound".
"""

from __future__ import annotations

import os
import socket
import struct
from typing import NamedTuple

# Raised here; kept importable from here for the callers that name it so.
from forge_tmux.errors import SockDiagUnavailable

# From <linux/netlink.h>, <linux/sock_diag.h>, <linux/unix_diag.h>.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
SHOW_NAME, SHOW_VFS, SHOW_RQLEN = 0x1, 0x2, 0x10  # UDIAG_SHOW_*
UNIX_DIAG_NAME, UNIX_DIAG_VFS, UNIX_DIAG_RQLEN = 0, 1, 4
_NLMSG_HDR, _UDIAG_MSG = 16, 16  # struct nlmsghdr, struct unix_diag_msg

# Socket states as TCP numbers them: CLOSE (7) is a bound socket not (yet) listening, LISTEN (10).
STATE_CLOSE, STATE_LISTEN = 7, 10
BOUND_STATES = (1 << STATE_CLOSE) | (1 << STATE_LISTEN)


class BoundSocket(NamedTuple):
    """A unix socket bound to a path in the file system."""

    path: str  # as given to bind(); the file may have been deleted or replaced since
    dev: int  # st_dev of the file bind() created
    ino: int  # st_ino of that file: equal to lstat(path).st_ino while the path is that file
    sock_ino: int  # the socket's own inode, `socket:[N]` in /proc/PID/fd
    listening: bool  # LISTEN; else bound but not listening (a server between bind and listen)


def bound_sockets() -> list[BoundSocket]:
    """Every unix socket of this network namespace bound to a path, listening or not (the kernel
    lists every user's; abstract and unbound sockets are left out)."""
    found = []
    for state, sock_ino, attrs in dump(BOUND_STATES, SHOW_NAME | SHOW_VFS):
        name, key = attrs.get(UNIX_DIAG_NAME), file_key(attrs)
        if not name or name[0] == 0 or key is None:
            continue  # abstract (a leading NUL) or not bound to a file
        path = os.fsdecode(name.rstrip(b"\0"))
        found.append(BoundSocket(path, *key, sock_ino, state == STATE_LISTEN))
    return found


def file_key(attrs: dict[int, bytes]) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file a socket is bound to, from its UNIX_DIAG_VFS attribute."""
    vfs = attrs.get(UNIX_DIAG_VFS)
    if vfs is None or len(vfs) < 8:
        return None
    ino, kdev = struct.unpack_from("=II", vfs)
    # The kernel reports its internal dev_t (major << 20 | minor), not the user-space one.
    return os.makedev(kdev >> 20, kdev & 0xFFFFF), ino


def dump(states: int, show: int) -> list[tuple[int, int, dict[int, bytes]]]:
    """(state, socket inode, {attribute type: payload}) for each unix socket in `states`, with
    the attributes `show` asks for (UDIAG_SHOW_*)."""
    try:
        nl = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG
        )
    except (OSError, AttributeError) as exc:
        raise SockDiagUnavailable(f"netlink (sock_diag) unavailable: {_why(exc)}") from None
    try:
        # struct unix_diag_req {u8 family, protocol; u16 pad; u32 states, ino, show, cookie[2];}
        request = struct.pack(
            "=BBHIIIII",
            socket.AF_UNIX,
            0,
            0,
            states,
            0,
            show,
            0xFFFFFFFF,
            0xFFFFFFFF,
        )
        header = struct.pack(
            "=IHHII", _NLMSG_HDR + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0
        )
        nl.sendto(header + request, (0, 0))
        records: list[tuple[int, int, dict[int, bytes]]] = []
        while True:
            data = nl.recv(1 << 16)
            if not data:
                raise SockDiagUnavailable("sock_diag: the kernel closed the dump early")
            offset = 0
            while offset + _NLMSG_HDR <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == _NLMSG_DONE:
                    return records
                if kind == _NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, offset + _NLMSG_HDR)
                    raise SockDiagUnavailable(f"sock_diag refused: {os.strerror(-code)}")
                end = offset + length
                if length < _NLMSG_HDR + _UDIAG_MSG or end > len(data):
                    raise SockDiagUnavailable("sock_diag: malformed answer")
                # struct unix_diag_msg {u8 family, type, state, pad; u32 ino; u32 cookie[2];}
                _, _, state, _, sock_ino = struct.unpack_from("=BBBBI", data, offset + _NLMSG_HDR)
                attrs = _attributes(data, offset + _NLMSG_HDR + _UDIAG_MSG, end)
                records.append((state, sock_ino, attrs))
                offset += (length + 3) & ~3
    except (OSError, struct.error) as exc:
        raise SockDiagUnavailable(f"sock_diag failed: {_why(exc)}") from None
    finally:
        nl.close()


def _attributes(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """The netlink attributes (struct nlattr {u16 len, type;} + payload, 4-aligned) in a slice."""
    attrs: dict[int, bytes] = {}
    at = start
    while at + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, at)
        if length < 4 or at + length > end:
            break
        attrs[kind & 0x3FFF] = data[at + 4 : at + length]  # without NLA_F_NESTED/BYTEORDER
        at += (length + 3) & ~3
    return attrs


def _why(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
