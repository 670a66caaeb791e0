"""Where things live: tmux's socket directory, the config file, the state directory."""

from __future__ import annotations

import os

TMUX_SOCKET_ROOT_DEFAULT = "/tmp"  # noqa: S108 - tmux's own _PATH_TMP
SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the terminating NUL
LOCK_SUFFIX = ".lock"  # tmux's lock file beside each socket: `<socket>.lock` (see locks.py)


def tmux_socket_root(environ: dict[str, str] | None = None) -> str:
    """The directory tmux puts `tmux-<uid>/` in, computed the way tmux 3.x does.

    tmux takes `$TMUX_TMPDIR` when it is set, non-empty and resolves (realpath of something that
    exists, even a regular file, on which tmux then fails), and otherwise falls back to /tmp
    without a word; we mirror that so the sweep looks where tmux looks.
    """
    env = os.environ if environ is None else environ
    candidate = env.get("TMUX_TMPDIR", "")
    if candidate:
        resolved = os.path.realpath(candidate)
        if os.path.exists(resolved):
            return resolved
    return TMUX_SOCKET_ROOT_DEFAULT


def tmux_socket_dir(uid: int | None = None, environ: dict[str, str] | None = None) -> str:
    """`${TMUX_TMPDIR:-/tmp}/tmux-<uid>`: the directory of this user's tmux sockets."""
    uid = os.geteuid() if uid is None else uid
    return os.path.join(tmux_socket_root(environ), f"tmux-{uid}")


def socket_path(label: str, uid: int | None = None, environ: dict[str, str] | None = None) -> str:
    """The path `tmux -L label` uses."""
    return os.path.join(tmux_socket_dir(uid, environ), label)


def _xdg(var: str, fallback: str) -> str:
    value = os.environ.get(var, "")
    # The XDG spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return value
    return os.path.join(os.path.expanduser("~"), fallback)


def default_config_path() -> str:
    return os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), "forge-tmux", "config.toml")


def state_dir() -> str:
    """`$FORGE_TMUX_STATE_DIR`, else `$XDG_STATE_HOME/forge-tmux`: health memory and outbox."""
    explicit = os.environ.get("FORGE_TMUX_STATE_DIR", "")
    if explicit:
        return explicit
    return os.path.join(_xdg("XDG_STATE_HOME", ".local/state"), "forge-tmux")


def display(path: str) -> str:
    """A path as printable text: names that are not UTF-8 show as `\\xNN` instead of failing."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
