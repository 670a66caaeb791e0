"""Every exception forge-tmux raises on purpose, in one place.

The CLI turns `UsageError` (and its `ConfigError`) into one line on stderr and exit 2. The doors'
errors say that a question could not be asked at all (the program is not installed, the kernel
cannot be asked): callers treat them as "unknown", never as "nothing there". Everything else that
escapes is a bug. This module imports nothing, so any module may raise these.
"""


class UsageError(Exception):
    """Bad usage, bad input or bad configuration: one line on stderr, exit 2."""


class ConfigError(UsageError):
    """The config file is unreadable, not TOML, or has an unknown key or a wrong type."""


class TmuxNotFound(Exception):
    """No tmux binary on PATH: not the same thing as "no server running"."""


class SystemdNotFound(Exception):
    """systemctl/loginctl/systemd-analyze is not installed (not the same as "not running")."""


class SockDiagUnavailable(Exception):
    """The kernel could not be asked (no AF_NETLINK here, or a malformed answer)."""


class OrphansUnknown(Exception):
    """Orphans could not be looked for (the message says why): never read as "none"."""


class NotRegularFile(OSError):
    """The target exists and is not a regular file: not ours to replace."""
