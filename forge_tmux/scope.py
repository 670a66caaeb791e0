"""The one door to `systemd-run --scope`: a tmux server must outlive the service that spawned it.

A tmux server forked from a service lives in that service's cgroup and is killed with it (the bot
restarting, a post-boot oneshot finishing). Started inside a transient scope of its own it belongs
to the manager, not to the service. Outside systemd nothing is needed; where systemd-run or a bus
is missing the spawn goes ahead without a scope, and says so once.

The environment of the scope is the tmux door's, secrets removed (`tmux.clean_env`): with
`--scope`, systemd-run runs the command itself, so the server gets what systemd-run was given,
never the manager's environment; `ScopePlan.environ` only adds where the bus is.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger(__name__)


class ScopeMode(StrEnum):
    NONE = "none"  # not under systemd: a plain child is fine
    USER = "user"  # systemd-run --user --scope
    SYSTEM = "system"  # root without a user manager: the system manager's scope
    FALLBACK = "fallback"  # under systemd but no way to make a scope: plain child, warned


@dataclass(frozen=True, slots=True)
class ScopePlan:
    mode: ScopeMode
    reason: str
    wrapper: tuple[str, ...] = ()
    # Added to the environment of the wrapped call (systemd-run --user finds the bus through
    # XDG_RUNTIME_DIR, which a system service running as a user does not have).
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str] | None:
        """The environment for the call, or None for "ours unchanged"."""
        if not self.extra_env:
            return None
        return {**os.environ, **self.extra_env}


def under_systemd(environ: Mapping[str, str], cgroup_text: str) -> bool:
    """True when this process runs as (part of) a systemd service.

    `INVOCATION_ID` is set by systemd for every service it starts; the cgroup path catches a
    service that cleared its environment. `user@UID.service` is the user manager itself: a
    process there directly is not a service of its own.
    """
    if environ.get("INVOCATION_ID"):
        return True
    for line in cgroup_text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or parts[1] not in ("", "name=systemd"):
            continue
        leaf = parts[2].rstrip("/").rsplit("/", 1)[-1]
        if leaf.endswith(".service") and not leaf.startswith("user@"):
            return True
    return False


def scope_argv(mode: ScopeMode, socket_name: str, token: str, systemd_run: str) -> tuple[str, ...]:
    """The `systemd-run` prefix for `mode`; the unit is named after the socket so that operators
    find it (`systemctl --user status 'forge-tmux-spawn-build-*'`), with a token because a
    scope of the same socket may still exist."""
    head = (systemd_run, "--user") if mode is ScopeMode.USER else (systemd_run,)
    return (
        *head,
        "--scope",
        "--quiet",
        "--collect",
        f"--unit=forge-tmux-{socket_name}-{token}",
        f"--description=forge-tmux tmux server {socket_name}",
        "--",
    )


def plan(
    socket_name: str,
    *,
    environ: Mapping[str, str],
    euid: int,
    cgroup_text: str,
    systemd_run: str | None,
    exists: Callable[[str], bool],
    token: str = "0",  # noqa: S107 - a unit name suffix, not a secret
) -> ScopePlan:
    """Decide how to start a server (pure: every fact about the machine is an argument)."""
    if not under_systemd(environ, cgroup_text):
        return ScopePlan(ScopeMode.NONE, "not running under systemd")
    if systemd_run is None:
        return ScopePlan(ScopeMode.FALLBACK, "systemd-run not found")
    runtime = environ.get("XDG_RUNTIME_DIR") or f"/run/user/{euid}"
    if environ.get("DBUS_SESSION_BUS_ADDRESS") or exists(os.path.join(runtime, "bus")):
        extra = {} if environ.get("XDG_RUNTIME_DIR") else {"XDG_RUNTIME_DIR": runtime}
        argv = scope_argv(ScopeMode.USER, socket_name, token, systemd_run)
        return ScopePlan(ScopeMode.USER, "user manager bus found", argv, extra)
    if euid == 0 and exists("/run/systemd/system"):
        argv = scope_argv(ScopeMode.SYSTEM, socket_name, token, systemd_run)
        return ScopePlan(ScopeMode.SYSTEM, "root without a user manager", argv)
    return ScopePlan(ScopeMode.FALLBACK, f"no user manager bus ({runtime}/bus)")


def current_plan(socket_name: str) -> ScopePlan:
    """The plan for this process; a fallback is logged (once) here."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8", errors="replace") as fh:
            cgroup_text = fh.read()
    except OSError:
        cgroup_text = ""
    decided = plan(
        socket_name,
        environ=os.environ,
        euid=os.geteuid(),
        cgroup_text=cgroup_text,
        systemd_run=shutil.which("systemd-run"),
        exists=os.path.exists,
        token=os.urandom(3).hex(),
    )
    if decided.mode is ScopeMode.FALLBACK:
        note_fallback(decided.reason)
    return decided


def scope_failed(returncode: int | None, stdout: str, stderr: str) -> bool:
    """Did systemd-run itself fail (so tmux never ran)? systemd-run reports its own errors as
    `Failed to ...` and exits non-zero before executing the command."""
    return bool(returncode) and not stdout and stderr.lstrip().startswith("Failed to")


_warned = False


def note_fallback(reason: str) -> None:
    """Warn once per process that servers are started without a scope of their own."""
    global _warned  # noqa: PLW0603 - one warning per process, however many spawns
    if _warned:
        return
    _warned = True
    log.warning(
        "running under systemd but cannot start a scope (%s): tmux servers spawned now "
        "live in this service's cgroup and stop with it",
        reason,
    )
