"""`forge-tmux doctor`: is this installation healthy? One check per line; changes nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from forge_tmux import notify, systemd_units, tmux
from forge_tmux.config import Config, load
from forge_tmux.errors import ConfigError, UsageError
from forge_tmux.paths import tmux_socket_dir
from forge_tmux.sockdir import DirStatus, open_socket_dir
from forge_tmux.systemd_units import Mode


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: Level
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "level": self.level.value.lower(), "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Report:
    mode: Mode
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.level is not Level.FAIL for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "mode": self.mode.value,
            "checks": [c.to_json() for c in self.checks],
        }


def render(report: Report) -> str:
    return "\n".join(f"{c.level.value:<4} {c.name}: {c.detail}" for c in report.checks)


def run(config_path: str | None, mode: Mode | None = None) -> Report:
    checks: list[Check] = [check_tmux()]
    try:
        cfg = load(config_path)
        checks.append(Check("config", Level.OK, cfg.path or "defaults (no config file)"))
    except ConfigError as exc:
        cfg = Config()
        checks.append(Check("config", Level.FAIL, str(exc)))
    checks += [check_socket_dir(d) for d in (tmux_socket_dir(), *cfg.socket_dirs)]
    mode = mode or _installed_mode()
    checks += check_units(systemd_units.status(mode))
    checks.append(check_telegram(cfg))
    return Report(mode, tuple(checks))


def _installed_mode() -> Mode:
    if os.path.exists(systemd_units.manifest_path(Mode.USER)):
        return Mode.USER
    if os.path.exists(systemd_units.manifest_path(Mode.SYSTEM)):
        return Mode.SYSTEM
    return Mode.USER


def check_tmux() -> Check:
    try:
        # -V never contacts a server; the socket name only satisfies the door's rule.
        result = tmux.run(["-V"], socket_name="forge-tmux-doctor", timeout=5)
    except tmux.TmuxNotFound as exc:
        return Check("tmux", Level.FAIL, str(exc))
    if result.returncode != 0:
        return Check("tmux", Level.FAIL, f"tmux -V failed: {result.stderr.strip()}")
    return Check("tmux", Level.OK, result.stdout.strip())


def check_socket_dir(path: str) -> Check:
    fd, found = open_socket_dir(path)
    name = f"socket dir {path}"
    if fd is None:
        if found.status is DirStatus.MISSING:
            return Check(name, Level.OK, "not created yet (tmux creates it with mode 0700)")
        return Check(name, Level.FAIL, f"unsafe, the sweep refuses it: {found.reason}")
    os.close(fd)
    return Check(name, Level.OK, "owned by you, mode 0700")


def check_units(status: systemd_units.Status) -> list[Check]:
    if status.manager is None:
        return [
            # Without a manager the janitor has no schedule at all: that is the failure doctor
            # exists to show, even where it is expected (a container).
            Check(
                "units",
                Level.FAIL,
                f"no running systemd {status.mode.value} manager: the sweep timer cannot run "
                "here (run `forge-tmux sweep` from cron or another scheduler)",
            )
        ]
    core = [u for u in status.units if u.name != systemd_units.BOT_SERVICE]
    core = [u for u in core if u.name != systemd_units.POST_BOOT_SERVICE or u.installed]
    checks = []
    for unit in core:
        if not unit.installed:
            level, detail = (
                Level.FAIL,
                f"not installed (run: forge-tmux units install --mode {status.mode.value})",
            )
        elif unit.enabled != "enabled":
            level, detail = Level.FAIL, f"installed but {unit.enabled}"
        else:
            level, detail = Level.OK, f"installed, enabled, {unit.active}"
        checks.append(Check(unit.name, level, detail))
    timer = next(u for u in status.units if u.name == systemd_units.SWEEP_TIMER)
    if timer.active == "active":
        checks.append(Check("timer next run", Level.OK, status.timer_next or "scheduled"))
    else:
        checks.append(Check("timer next run", Level.FAIL, f"timer is {timer.active}: no next run"))
    if status.lingering is not None:
        if status.lingering:
            checks.append(Check("lingering", Level.OK, "on: user units start at boot"))
        else:
            checks.append(
                Check(
                    "lingering",
                    Level.WARN,
                    "off: units start at first login; to start them at boot run: "
                    "sudo loginctl enable-linger $USER",
                )
            )
    checks.append(check_last_sweep(status.last_sweep))
    return checks


def check_last_sweep(props: dict[str, str]) -> Check:
    result = props.get("Result", "")
    code = props.get("ExecMainStatus", "")
    when = props.get("ExecMainExitTimestamp", "")
    if not when:
        return Check("last sweep", Level.WARN, "has not run yet")
    if result == "success" and code == "0":
        return Check("last sweep", Level.OK, f"succeeded at {when}")
    return Check("last sweep", Level.FAIL, f"{result}, exit status {code}, at {when}")


def check_telegram(cfg: Config, environ: dict[str, str] | None = None) -> Check:
    """The notifier's own resolution (`notify.resolve`): what it refuses, doctor reports."""
    env = os.environ if environ is None else environ
    source = notify.token_source(cfg.telegram, env)
    try:
        settings = notify.resolve(cfg.telegram, env)
    except UsageError as exc:
        return Check("telegram", Level.FAIL, str(exc))
    if settings.token is None and not settings.chat_id:
        return Check("telegram", Level.OK, "not configured (no notifications)")
    if settings.token is None or not settings.chat_id:
        missing = "a token" if settings.token is None else "a chat id"
        return Check("telegram", Level.WARN, f"half configured: {missing} is missing")
    origin = "" if source is None else source.describe()
    return Check("telegram", Level.OK, f"configured (token from {origin}, chat {settings.chat_id})")
