"""The one door to `systemctl`, `loginctl` and `systemd-analyze`.

Every call is an argument vector with a timeout that kills; a non-zero exit is data (a
`SystemdResult`), never an exception. A missing binary is its own error, `SystemdNotFound`, so
that "systemd is not installed" is never confused with "the unit is not running".
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from forge_tmux import procs

# Raised here; `systemd.SystemdNotFound` is how callers name it.
from forge_tmux.errors import SystemdNotFound as SystemdNotFound  # noqa: PLC0414 (a re-export)

# A systemd tool's run is the shared record as it is (`ok` is exit status 0; `why` for messages).
SystemdResult = procs.Ran

DEFAULT_TIMEOUT: Final = 30.0
# `systemctl is-system-running` prints one of these when a manager answered at all.
_MANAGER_STATES: Final = frozenset(
    {"initializing", "starting", "running", "degraded", "maintenance", "stopping"}
)
LINGER_DIR: Final = "/var/lib/systemd/linger"


def _binary(name: str) -> str:
    found = procs.which(name)
    if found is None:
        raise SystemdNotFound(f"{name} not found on PATH")
    return found


def systemctl_argv(args: Sequence[str], *, user: bool) -> tuple[str, ...]:
    return ("systemctl", *(("--user",) if user else ()), "--no-pager", "--no-ask-password", *args)


def run(
    argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, env: Mapping[str, str] | None = None
) -> SystemdResult:
    """Run one systemd tool; argv[0] is looked up on PATH."""
    try:
        return procs.run(argv, executable=_binary(argv[0]), env=env, timeout=timeout)
    except FileNotFoundError as exc:
        raise SystemdNotFound(f"cannot run {argv[0]}: {exc.strerror}") from None


def systemctl(
    args: Sequence[str], *, user: bool, timeout: float = DEFAULT_TIMEOUT
) -> SystemdResult:
    return run(systemctl_argv(args, user=user), timeout=timeout)


def loginctl(args: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> SystemdResult:
    return run(("loginctl", "--no-pager", "--no-ask-password", *args), timeout=timeout)


def analyze(
    args: Sequence[str], *, timeout: float = 60.0, env: Mapping[str, str] | None = None
) -> SystemdResult:
    return run(("systemd-analyze", *args), timeout=timeout, env=env)


def manager_state(*, user: bool) -> str | None:
    """The manager's state (`running`, `degraded`, ...), or None when no manager answers."""
    result = systemctl(["is-system-running"], user=user, timeout=10)
    state = result.stdout.strip()
    return state if state in _MANAGER_STATES else None


def show(unit: str, properties: Sequence[str], *, user: bool) -> dict[str, str]:
    """`systemctl show -p ...` as a dict; empty when the manager did not answer."""
    result = systemctl(["show", unit, "-p", ",".join(properties)], user=user, timeout=10)
    if not result.ok:
        return {}
    values: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values


def timer_next(unit: str, *, user: bool) -> datetime | None:
    """When a timer fires next (wall clock), None when it is not scheduled or nobody answers.
    `list-timers` does the monotonic-to-wall-clock arithmetic that `show` leaves to us."""
    result = systemctl(["list-timers", "--all", "--output=json", unit], user=user, timeout=10)
    try:
        rows = json.loads(result.stdout) if result.ok else []
        usec = int(rows[0]["next"]) if rows else 0
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return datetime.fromtimestamp(usec / 1e6, UTC) if usec > 0 else None


def lingering(user_name: str) -> bool:
    """Whether logind starts this user's manager at boot (read from logind's own flag file, so
    it needs no running logind)."""
    return os.path.exists(os.path.join(LINGER_DIR, user_name))
