"""The --json shape of every command, pinned (pipx's contract test): one TypedDict per command
describes its object, and a real run of the real CLI must match it exactly, key for key and type
for type. A key added to a command's JSON is added here too, on purpose; a key renamed or
dropped fails here before a script that reads it does.

The contract (docs/contract.md) documents some keys; CONTRACT lists them verbatim and a test
checks that each TypedDict still has them.
"""

# No `from __future__ import annotations`: TypedDict needs real annotations to tell NotRequired
# keys apart (__required_keys__).
import os
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, NotRequired, TypedDict, get_args, get_origin, get_type_hints

import pytest

from forge_tmux_testing.cli import CliResult, run_cli
from forge_tmux_testing.fake_bot_api import FakeBotAPI
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux

pytestmark = needs_tmux

Cli = Callable[..., CliResult]

# --- the shapes ------------------------------------------------------------------------------


class SweepDir(TypedDict):
    path: str
    status: Literal["swept", "missing", "refused"]
    reason: str


class SweepSocket(TypedDict):
    path: str
    state: Literal["live", "stale", "unknown", "skipped"]
    removed: bool
    reason: str
    code: Literal["kept", "protected", "lock_held", "would_remove", "removed"]


class SweepSummary(TypedDict):
    live: int
    stale: int
    removed: int
    unknown: int
    skipped: int
    locks_removed: int


class Sweep(TypedDict):
    dirs: list[SweepDir]
    sockets: list[SweepSocket]
    summary: SweepSummary
    duration_ms: float


class Spawn(TypedDict):
    ok: bool
    session: str
    socket_name: str
    socket_path: str
    cleaned: int
    attempts: int
    message: str
    error: str | None


class HealthSocket(TypedDict):
    path: str
    state: Literal["live", "dead", "hung", "unknown"]
    sessions: int | None
    reason: str
    pid: int | None
    uid: int | None


class HealthOrphan(TypedDict):
    pid: int
    uid: int
    path: str
    reason: str


class HealthDir(TypedDict):
    path: str
    status: Literal["checked", "read-only", "missing", "unreadable"]
    reason: str


class HealthEvent(TypedDict):
    kind: Literal["gone", "hung", "recovered", "orphaned"]
    path: str
    pid: int | None
    detail: str


class Health(TypedDict):
    live: int
    dead: int
    hung: int
    unknown: int
    orphaned: int
    sessions: int
    sockets: list[HealthSocket]
    orphans: list[HealthOrphan]
    orphan_error: str | None
    dirs: list[HealthDir]
    timestamp: float
    duration_ms: float
    events: NotRequired[list[HealthEvent]]  # with --events only


class Orphan(TypedDict):
    pid: int
    path: str
    action: Literal["recovered", "would-recover", "refused", "failed"]
    reason: str


class Recover(TypedDict):
    ok: bool
    dry_run: bool
    orphans: list[Orphan]
    error: NotRequired[str]  # only when orphans could not be looked for (then ok is false)


class Delivery(TypedDict):
    delivered: int
    queued: int
    uncertain: int
    rejected: int
    error: str


class PostBootStatus(TypedDict):
    name: str
    session: str
    socket_name: str
    running: bool
    detail: str


class Boot(TypedDict):
    ok: bool
    sweep: Sweep
    post_boot: list[PostBootStatus]
    health: str
    events: list[str]
    notify: Delivery | None  # None when Telegram is not configured


class UnitsRender(TypedDict):
    mode: Literal["user", "system"]
    out: str
    files: list[str]


class DoctorCheck(TypedDict):
    name: str
    level: Literal["ok", "warn", "fail"]
    detail: str


class Doctor(TypedDict):
    ok: bool
    mode: Literal["user", "system"]
    checks: list[DoctorCheck]


class PostBootSession(Spawn):
    status: Literal["spawned", "already_running", "not_ready", "failed"]


class PostBoot(TypedDict):
    ok: bool
    sessions: list[PostBootSession]
    summary: str


# The keys docs/contract.md documents, verbatim (nested ones as dotted paths).
CONTRACT: dict[type, set[str]] = {
    Sweep: {"dirs", "sockets", "summary", "duration_ms"},
    SweepDir: {"path", "status", "reason"},
    SweepSocket: {"path", "state", "removed", "reason"},
    SweepSummary: {"live", "stale", "removed", "unknown", "skipped"},
    Spawn: {
        "ok",
        "session",
        "socket_name",
        "socket_path",
        "cleaned",
        "attempts",
        "message",
        "error",
    },
    Health: {"live", "dead", "hung", "unknown", "sockets"},
    HealthSocket: {"path", "state", "sessions"},
}

# --- the checker -----------------------------------------------------------------------------


def problems(value: Any, hint: Any, where: str = "$") -> list[str]:
    """Where `value` (parsed JSON) differs from `hint`: TypedDicts exactly (no missing and no
    unknown key), Literal, unions, list[X], bool, int, float (an int is a JSON number too), str
    and None."""
    if typing.is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        hints = get_type_hints(hint)
        found = [f"{where}: missing {k!r}" for k in sorted(hint.__required_keys__ - set(value))]
        found += [f"{where}: unknown key {k!r}" for k in sorted(set(value) - set(hints))]
        for key in set(value) & set(hints):
            found += problems(value[key], hints[key], f"{where}.{key}")
        return found
    origin = get_origin(hint)
    if origin is NotRequired:
        return problems(value, get_args(hint)[0], where)
    if origin is Literal:
        return [] if value in get_args(hint) else [f"{where}: {value!r} not in {get_args(hint)}"]
    if origin in (typing.Union, types.UnionType):
        each = [problems(value, option, where) for option in get_args(hint)]
        return [] if any(not p for p in each) else [f"{where}: {value!r} is not {hint}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not a list"]
        (item,) = get_args(hint)
        return [p for i, v in enumerate(value) for p in problems(v, item, f"{where}[{i}]")]
    if hint is type(None):
        return [] if value is None else [f"{where}: {value!r} is not null"]
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint)
    return [] if ok else [f"{where}: {value!r} is not {hint.__name__}"]


def pinned(result: CliResult, shape: type) -> dict[str, Any]:
    """The command printed exactly one JSON object on stdout, of `shape`."""
    assert result.out.count("\n") == 1, (result.out, result.err)
    data = result.json()
    assert problems(data, shape) == [], result.out
    return data  # type: ignore[no-any-return]


# --- the checker itself ----------------------------------------------------------------------


def test_the_checker_catches_a_renamed_an_unknown_and_a_mistyped_key() -> None:
    good = {"ok": True, "mode": "user", "checks": [{"name": "t", "level": "ok", "detail": ""}]}
    assert problems(good, Doctor) == []
    assert problems({**good, "extra": 1}, Doctor) == ["$: unknown key 'extra'"]
    assert problems({"ok": True, "checks": []}, Doctor) == ["$: missing 'mode'"]
    assert problems({**good, "ok": 1}, Doctor) == ["$.ok: 1 is not bool"]
    bad_level = {**good, "checks": [{"name": "t", "level": "FAIL", "detail": ""}]}
    assert problems(bad_level, Doctor) == [
        "$.checks[0].level: 'FAIL' not in ('ok', 'warn', 'fail')"
    ]
    assert problems({"ok": True, "dry_run": False, "orphans": []}, Recover) == []
    assert problems(
        {"delivered": True, "queued": 0, "uncertain": 0, "rejected": 0, "error": ""}, Delivery
    )


@pytest.mark.parametrize("shape", list(CONTRACT))
def test_every_documented_key_is_in_its_shape(shape: type) -> None:
    assert CONTRACT[shape] <= set(get_type_hints(shape)), shape.__name__


# --- real runs -------------------------------------------------------------------------------


def test_sweep(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.start("live")
    tmux_env.stale("dead")
    dry = pinned(cli("sweep", "--dry-run", "--json"), Sweep)
    assert {s["code"] for s in dry["sockets"]} == {"kept", "would_remove"}
    swept = pinned(
        cli("sweep", "--json", "--dir", tmux_env.sockdir, "--dir", "/nonexistent"), Sweep
    )
    assert swept["summary"]["removed"] == 1
    assert {d["status"] for d in swept["dirs"]} == {"swept", "missing"}


def test_spawn(tmux_env: TmuxEnv, cli: Cli) -> None:
    pinned(cli("spawn", "--json", "build", "--", "sleep", "100000"), Spawn)
    again = pinned(cli("spawn", "--json", "build", "--", "sleep", "100000"), Spawn)
    assert again["ok"] is False
    assert isinstance(again["error"], str)


def test_health(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.start("live")
    tmux_env.stale("dead")
    data = pinned(cli("health", "--format", "json"), Health)
    assert (data["live"], data["dead"]) == (1, 1)
    assert "events" not in data
    with_events = pinned(cli("health", "--json", "--events"), Health)
    assert "events" in with_events


def test_recover(tmux_env: TmuxEnv, cli: Cli) -> None:
    assert pinned(cli("recover", "--json"), Recover)["orphans"] == []
    server = tmux_env.start("lost")
    os.unlink(server.path)
    dry = pinned(cli("recover", "--dry-run", "--json"), Recover)
    assert [o["action"] for o in dry["orphans"]] == ["would-recover"]  # the fixture kills it


def test_boot_without_telegram(tmux_env: TmuxEnv, cli: Cli) -> None:
    assert pinned(cli("boot", "--json"), Boot)["notify"] is None


def test_boot_and_notify_with_telegram(tg_env: TmuxEnv, fake: FakeBotAPI, cli: Cli) -> None:
    boot = pinned(cli("boot", "--json"), Boot)
    assert boot["notify"] is not None
    assert boot["notify"]["delivered"] == 1
    pinned(cli("notify", "--json", "hello"), Delivery)


def test_post_boot(tmux_env: TmuxEnv, cli: Cli) -> None:
    config = os.path.join(tmux_env.root, "config.toml")
    with open(config, "w") as fh:
        fh.write('[[boot.sessions]]\nname = "agent"\ncommand = ["sleep", "100000"]\n')
    data = pinned(cli("--config", config, "post-boot", "--json"), PostBoot)
    assert [s["status"] for s in data["sessions"]] == ["spawned"]
    booted = pinned(cli("--config", config, "boot", "--json"), Boot)
    assert [s["running"] for s in booted["post_boot"]] == [True]


def test_units_render(tmp_path: os.PathLike[str], tmux_env: TmuxEnv) -> None:
    out = os.path.join(tmp_path, "units")
    for mode in ("user", "system"):
        args = ("units", "render", "--mode", mode, "--out", out, "--json")
        pinned(run_cli(*args, env=tmux_env.env), UnitsRender)


def test_doctor(tmux_env: TmuxEnv, cli: Cli) -> None:
    pinned(cli("doctor", "--json"), Doctor)
