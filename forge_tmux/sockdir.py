"""The socket-directory rule, shared by everything that looks into a tmux socket directory.

The sweep deletes only in directories that pass it; health, doctor and recover use the same rule
to decide which directories they judge, so that the read-only probe and the janitor agree.

- A directory is opened with O_NOFOLLOW and must be a real directory owned by us with no group or
  other permission bits; otherwise nothing in it is touched. (tmux itself only rejects "other"
  bits; a directory other group members can enter is not one we delete from.)
- Everything afterwards is done relative to the returned descriptor, never through a path that a
  symlink could redirect.
"""

import os
import stat
from enum import StrEnum
from typing import NamedTuple


class DirStatus(StrEnum):
    SWEPT = "swept"
    MISSING = "missing"
    REFUSED = "refused"


class DirResult(NamedTuple):
    path: str
    status: DirStatus
    reason: str


def open_socket_dir(path: str) -> tuple[int | None, DirResult]:
    """Open a socket directory if it is safe to act in; the fd is None when it is not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, DirResult(path, DirStatus.MISSING, "does not exist")
    except OSError as exc:
        if os.path.islink(path):
            return None, DirResult(path, DirStatus.REFUSED, "is a symlink, never followed")
        return None, DirResult(path, DirStatus.REFUSED, f"cannot open: {exc.strerror or exc}")
    st = os.fstat(fd)
    problem = unsafe_dir_reason(st, os.geteuid())
    if problem:
        os.close(fd)
        return None, DirResult(path, DirStatus.REFUSED, problem)
    return fd, DirResult(path, DirStatus.SWEPT, "")


def unsafe_dir_reason(st: os.stat_result, euid: int) -> str:
    """Why a directory is not ours to clean, or "" when it is."""
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != euid:
        return f"owned by uid {st.st_uid}, not ours"
    if st.st_mode & 0o077:
        return f"unsafe permissions {stat.S_IMODE(st.st_mode):04o} (group/other bits set)"
    return ""
