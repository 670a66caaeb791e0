"""The one atomic file writer: a reader sees the old file or the new one, never a part of either.

Whole or nothing: the text goes to a temporary file in the target's directory, written in full (a
short write is continued), fsynced and chmodded, then renamed over the target; the directory is
fsynced so the rename survives a crash. On any error (ENOSPC, EIO, an interrupt) the temporary
file is removed and the error raised. A target that exists and is not a regular file (a device
node, a FIFO, a symlink, a directory) is refused, never replaced: see `refuse_special`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator

from forge_tmux.errors import NotRegularFile

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def refuse_special(path: str) -> None:
    """Raise NotRegularFile when `path` exists and is anything but a regular file. A rename
    would put a regular file in place of a device node (`--output /dev/null` as root), a FIFO
    a reader waits on, or a symlink someone pointed elsewhere; none of them is ours to replace."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return  # nothing there, or nothing we can see: the write itself will say why it fails
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise NotRegularFile(f"{path} is {kind}, not a regular file; not replacing it")


def write_atomic(path: str, text: str, mode: int = 0o600, *, tmp: str | None = None) -> None:
    """Replace `path` with `text` (UTF-8; undecodable input's lone surrogates become `?`) in one
    rename, with file mode `mode`. `tmp`: the temporary file's path, when its name must say
    something (the outbox puts the writer's pid in it); it must not exist. By default a fresh
    hidden name next to `path`."""
    refuse_special(path)
    if tmp is None:
        import tempfile  # noqa: PLC0415 (only writers of named files pay for it)

        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(
            dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
    else:
        directory = os.path.dirname(os.path.abspath(tmp))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            _write_all(fd, text.encode("utf-8", "replace"))
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        refuse_special(path)  # again, just before the rename: it may have appeared meanwhile
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # never seen on a regular file; no endless loop either
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def fsync_dir(directory: str) -> None:
    """Make the renames and removals in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold an exclusive flock on `path`.lock: read-change-write cycles of one record by
    several processes (timer, spawn, boot) then lose no update."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
