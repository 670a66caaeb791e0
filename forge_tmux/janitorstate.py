"""The janitor's own record: when a sweep last ran and last succeeded, and counters that survive
restarts, for `health --format prometheus` and the fleet's alerts.

Every real sweep (the timer's, the boot hook's, spawn's pre-flight and its retry) updates one small
file in the state directory (`janitor.state`, one `name value` pair a line). A dry run is not
recorded: it does not do the janitor's job. The file is read and rewritten under an flock (a timer
sweep, a boot hook and a spawn may run at once; a lost update would lose counts) and replaced in
one rename, so a reader sees the old record or the new, never half of one.

Recording never decides an exit code and never raises: a state directory that cannot be written is
logged at warning (by the caller: the sweep configures logging only when it has something to say)
and the sweep's result stands. A record that is missing or unreadable reads as all zeros; the
alert on a stale janitor then fires, which is right: nobody can tell when it last worked. This
module is on the sweep's hot path, so it imports nothing heavy (no json, no dataclasses, no
tempfile).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from forge_tmux import atomic
from forge_tmux.paths import state_dir

FILE_NAME = "janitor.state"
VERSION = 1


class JanitorState(NamedTuple):
    last_run: float = 0.0  # Unix time the last recorded sweep finished (0: never)
    last_success: float = 0.0  # ... and the last one that succeeded (0: never)
    removed_total: int = 0  # stale sockets removed, ever
    failures_total: int = 0  # sweeps that failed (a refused directory, a socket not removable)
    spawn_retries_total: int = 0  # spawns that had to sweep and create a second time
    failure_reported: bool = False  # the current run of failures was told (reset by a success)

    def to_text(self) -> str:
        pairs = [("version", VERSION), *self._asdict().items()]
        return "".join(
            f"{name} {int(value) if isinstance(value, bool) else value}\n" for name, value in pairs
        )


def record_path(directory: str | None = None) -> str:
    return os.path.join(directory or state_dir(), FILE_NAME)


def load(path: str) -> JanitorState:
    """The record at `path`; missing, unreadable or foreign means all zeros, and a field that
    does not parse is zero (the worst outcome is a counter that restarts, never a crash)."""
    try:
        with open(path, encoding="utf-8") as fh:
            pairs = dict(line.split(" ", 1) for line in fh.read().splitlines() if " " in line)
    except (OSError, ValueError):
        return JanitorState()
    if pairs.get("version") != str(VERSION):
        return JanitorState()
    fields: dict[str, Any] = {}
    for name, default in JanitorState._field_defaults.items():
        kind = int if isinstance(default, bool) else type(default)
        try:
            value = kind(pairs[name])
        except (KeyError, ValueError):
            continue
        if value >= 0:
            fields[name] = bool(value) if isinstance(default, bool) else value
    return JanitorState(**fields)


def _write_atomic(path: str, text: str) -> None:
    # A pid-named temporary file instead of tempfile's random one: the plain sweep records
    # through here and must not pay for importing tempfile (random, shutil). Callers hold the
    # record's lock, so a leftover of a dead process with our pid is the only file it can meet.
    tmp = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    atomic.write_atomic(path, text, 0o600, tmp=tmp)


def _update(change: dict[str, Any], adds: dict[str, int], directory: str | None) -> str | None:
    """Read, change, write under the lock. The problem when it could not be written, else None."""
    path = record_path(directory)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with atomic.locked(path):
            old = load(path)
            new = old._replace(
                **change, **{name: getattr(old, name) + n for name, n in adds.items()}
            )
            _write_atomic(path, new.to_text())
    except OSError as exc:
        return f"cannot record the sweep in {path}: {exc.strerror or exc}"
    return None


def update_after_sweep(
    ok: bool, removed: int, *, now: float | None = None, directory: str | None = None
) -> str | None:
    """Record a finished sweep (not a dry run). Never raises; the problem when not recorded."""
    stamp = time.time() if now is None else now
    change: dict[str, Any] = {"last_run": stamp}
    if ok:
        change |= {"last_success": stamp, "failure_reported": False}
    return _update(change, {"removed_total": removed, "failures_total": 0 if ok else 1}, directory)


def _warn(problem: str | None) -> None:
    if problem:
        import logging  # noqa: PLC0415 - a measurable part of the sweep's cold start

        logging.getLogger(__name__).warning("%s", problem)


def record_sweep(ok: bool, removed: int, *, directory: str | None = None) -> None:
    """`update_after_sweep` for callers whose logging is set up (boot, spawn): a warning."""
    _warn(update_after_sweep(ok, removed, directory=directory))


def record_spawn_retry(*, directory: str | None = None) -> None:
    """Record that a spawn had to sweep and create a second time."""
    _warn(_update({}, {"spawn_retries_total": 1}, directory))


def claim_failure_report(*, directory: str | None = None) -> bool:
    """True once per run of failures: the caller tells someone; later calls say False until a
    successful sweep resets it. When the record cannot be written, True (better twice than
    never)."""
    path = record_path(directory)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with atomic.locked(path):
            old = load(path)
            if old.failure_reported:
                return False
            new = old._replace(failure_reported=True)
            _write_atomic(path, new.to_text())
    except OSError as exc:
        _warn(f"cannot remember the failure report in {path}: {exc.strerror or exc}")
    return True


# --- the exposition (health --format prometheus) ----------------------------------------------


class Labelled(NamedTuple):
    uid: int | None  # the `uid` label (health --all-users), None: no label
    state: JanitorState


def records_of(uids: Sequence[int], own_uid: int) -> list[Labelled]:
    """The records of `uids` (health --all-users): the own one from the state directory, others'
    from `~/.local/state/forge-tmux` of their home. Another user's record that is missing or
    unreadable is left out (a user without forge-tmux must not look like a stale janitor); the own
    record is always there (zeros when missing)."""
    import pwd  # noqa: PLC0415 - only for --all-users

    found = []
    for uid in sorted({own_uid, *uids}):
        if uid == own_uid:
            found.append(Labelled(uid, load(record_path())))
            continue
        try:
            home = pwd.getpwuid(uid).pw_dir
        except KeyError:
            continue
        path = os.path.join(home, ".local", "state", "forge-tmux", FILE_NAME)
        if os.access(path, os.R_OK):
            found.append(Labelled(uid, load(path)))
    return found


_METRICS = (
    (
        "forge_tmux_sweep_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful sweep (0: never).",
        "last_success",
    ),
    (
        "forge_tmux_sweep_last_run_timestamp_seconds",
        "gauge",
        "Unix time of the last sweep, successful or not (0: never).",
        "last_run",
    ),
    (
        "forge_tmux_sweep_removed_total",
        "counter",
        "Stale tmux sockets removed by the janitor.",
        "removed_total",
    ),
    ("forge_tmux_sweep_failures_total", "counter", "Sweeps that failed.", "failures_total"),
    (
        "forge_tmux_spawn_retries_total",
        "counter",
        "Spawns that swept and created a second time.",
        "spawn_retries_total",
    ),
)


def exposition(records: Sequence[Labelled], version: str) -> list[str]:
    """Text exposition lines of the records and the build info (one HELP/TYPE per family)."""
    escaped = version.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    lines = [
        "# HELP forge_tmux_build_info The forge-tmux version that wrote this; always 1.",
        "# TYPE forge_tmux_build_info gauge",
        f'forge_tmux_build_info{{version="{escaped}"}} 1',
    ]
    for name, kind, help_text, attribute in _METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for uid, state in records:
            labels = "" if uid is None else f'{{uid="{uid}"}}'
            value = getattr(state, attribute)
            lines.append(f"{name}{labels} {round(value, 3) if isinstance(value, float) else value}")
    return lines


# --- the OnFailure= report ----------------------------------------------------------------------


def failure_lines(unit: str, mode: str, environ: dict[str, str]) -> list[str]:
    """What `units report-failure` tells: the unit, how it failed (systemd passes the failed
    unit's result to OnFailure= units as $MONITOR_*), and what to run on the host."""
    result = environ.get("MONITOR_SERVICE_RESULT", "")
    how = [f"result {result}"] if result else []
    status = environ.get("MONITOR_EXIT_STATUS", "")
    if status:
        code = environ.get("MONITOR_EXIT_CODE", "exited")
        how.append(f"{code} {status}")
    user = " --user" if mode == "user" else ""
    return [
        f"{unit} failed" + (f" ({', '.join(how)})" if how else ""),
        f"run: systemctl{user} status {unit}; forge-tmux doctor",
        "told once until a sweep succeeds again",
    ]


def forget(directory: str | None = None) -> list[str]:
    """Remove the record and its lock (`units uninstall`), and the state directory when that
    leaves it empty; the paths removed."""
    path = record_path(directory)
    removed = []
    for name in (path, path + ".lock"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
            removed.append(name)
    with contextlib.suppress(OSError):  # not empty: the outbox, the health memory, ...
        os.rmdir(os.path.dirname(path))
    return removed
