"""The spawn harness: one detached tmux session on its own socket, verified, retried once.

Flow: pre-flight sweep of the socket directory (the janitor's own code) -> a session of that name
already running: refuse, replace nothing -> `new-session` as an argument vector -> verify with an
exact target -> on a socket-class failure sweep again and retry exactly once. tmux's exit status is
never trusted on its own: a failed `new-session` can exit 0 having created nothing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from forge_tmux import janitorstate, scope, tmux
from forge_tmux import sweep as janitor
from forge_tmux.errors import UsageError
from forge_tmux.logs import log_events
from forge_tmux.paths import SUN_PATH_MAX, display, tmux_socket_dir
from forge_tmux.probe import SocketState, probe_path
from forge_tmux.tmux import TmuxErrorKind, TmuxNotFound, TmuxResult

if TYPE_CHECKING:
    from forge_tmux.config import Config

log = logging.getLogger(__name__)

SOCKET_PREFIX: Final = "spawn-"
HASH_LEN: Final = 8
# `tmux -L default` is the shared default socket, the very thing spawn exists to avoid.
DEFAULT_SOCKET: Final = "default"
# Bounds on single tmux calls. A server start under load can take a while; a query that takes
# seconds means a hung server, and waiting longer would not change the answer (the CLI passes
# `health.timeout`, the fleet's one definition of "hung").
CREATE_TIMEOUT: Final = 10.0
QUERY_TIMEOUT: Final = 2.0
# How long to wait for a dying server to stop accepting (kill-server returns before it does).
GONE_TIMEOUT: Final = 2.0
# Pauses before each `has-session` check after a creation: some multiplexers with tmux's interface
# (psmux) create asynchronously, so "not there yet" is retried a few times, briefly.
VERIFY_PAUSES: Final = (0.0, 0.025, 0.05, 0.1, 0.15)
# What `new-session -P -F '#{pid} #{session_id}'` prints when it really created a session.
_CREATED = re.compile(r"\A(\d+) (\$\d+)\s*\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# A name that already ends like a hash suffix is hashed too, so a hashed name can never equal
# a name someone typed.
_HASH_TAIL = re.compile(r"-[0-9a-f]{%d}\Z" % HASH_LEN)  # noqa: UP031 - a regex quantifier
PANE_TAIL_LINES: Final = 10
SAVE_UNIT: Final = "forge-tmux-save.service"  # systemd_units.SAVE_SERVICE (jinja2 stays off here)


class Outcome(StrEnum):
    SPAWNED = "spawned"
    ALREADY_RUNNING = "already_running"  # nothing was created or replaced
    NOT_READY = "not_ready"  # created and left running, but the ready pattern never appeared
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SpawnRequest:
    """A validated spawn: every field is safe to hand to tmux."""

    name: str  # as given
    session: str  # the safe session name
    socket_name: str
    socket_path: str
    command: tuple[str, ...] = ()  # empty: tmux's default command (the user's shell)
    wait_for: str | None = None
    ready_timeout: float = 30.0
    query_timeout: float = QUERY_TIMEOUT  # has-session, capture-pane
    cwd: str | None = None  # None: the spawner's own working directory (tmux's default)
    profile: str | None = None  # the bot's profile it came from, kept in the saved snapshot


@dataclass(frozen=True, slots=True)
class SpawnResult:
    outcome: Outcome
    session: str
    socket_name: str
    socket_path: str
    cleaned: int  # stale sockets removed on the way (both sweeps)
    attempts: int  # creations tried: 0 (refused before creating), 1 or 2
    message: str
    error: str | None = None
    server_pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SPAWNED

    def to_json(self) -> dict[str, object]:
        """Exactly the contract's keys."""
        return {
            "ok": self.ok,
            "session": self.session,
            "socket_name": self.socket_name,
            "socket_path": display(self.socket_path),
            "cleaned": self.cleaned,
            "attempts": self.attempts,
            "message": self.message,
            "error": self.error,
        }


# ---- names (pure) --------------------------------------------------------------------------


def name_budget(socket_dir: str) -> int:
    """How many characters a safe name may have so `<socket_dir>/spawn-<name>` fits sun_path."""
    return SUN_PATH_MAX - len(os.fsencode(os.path.join(socket_dir, SOCKET_PREFIX)))


def name_hash(name: str) -> str:
    import hashlib  # noqa: PLC0415 - only names that need a suffix pay for it (~1.5 ms)

    # surrogateescape: a name from argv may carry bytes that are not UTF-8.
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:HASH_LEN]


def safe_name(name: str, budget: int) -> str:
    """The session name for `name`: ASCII letters, digits, `-`, `_`, at most `budget` characters.

    Anything else becomes `-`; a name that was changed, shortened, or already ends like a hash
    suffix gets `-<hash of the original>`, so two different names never share a socket
    (`a.b` -> `a-b-<hash>`, `a-b` stays `a-b`). Unicode letters are replaced too: the name ends up
    in a file name and in tmux targets, where plain ASCII is the one thing that is never ambiguous.
    """
    if not name.strip():
        raise UsageError("the session name must not be empty")
    suffix_len = HASH_LEN + 1
    if budget <= suffix_len:
        raise UsageError(f"the socket directory path is too long for any session name ({budget})")
    cleaned = _UNSAFE.sub("-", name)
    if cleaned == name and len(name) <= budget and not _HASH_TAIL.search(name):
        return name
    return f"{cleaned[: budget - suffix_len]}-{name_hash(name)}"


def check_socket_name(label: str, socket_dir: str, protected: Iterable[str]) -> str:
    """The socket path for `-L label`, or UsageError when spawn must not use that socket."""
    if not label:
        raise UsageError("--socket-name must not be empty")
    if _UNSAFE.search(label):
        raise UsageError(f"socket name {label!r} may contain only letters, digits, '-' and '_'")
    if label == DEFAULT_SOCKET:
        raise UsageError("'default' is tmux's shared default socket; spawn never uses it")
    if label in frozenset(protected):
        raise UsageError(f"socket '{label}' is protected (protected_sockets); spawn never uses it")
    path = os.path.join(socket_dir, label)
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise UsageError(f"socket path {path} is longer than {SUN_PATH_MAX} bytes")
    return path


def make_request(
    name: str,
    command: Sequence[str] = (),
    *,
    socket_name: str | None = None,
    wait_for: str | None = None,
    ready_timeout: float = 30.0,
    protected: Iterable[str] = (),
    socket_dir: str | None = None,
    query_timeout: float = QUERY_TIMEOUT,
    cwd: str | None = None,
    profile: str | None = None,
) -> SpawnRequest:
    """Validate everything that can be wrong with a spawn before anything is run."""
    directory = tmux_socket_dir() if socket_dir is None else socket_dir
    session = safe_name(name, name_budget(directory))
    label = socket_name if socket_name is not None else SOCKET_PREFIX + session
    path = check_socket_name(label, directory, protected)
    if wait_for is not None:
        try:
            re.compile(wait_for)
        except re.error as exc:
            raise UsageError(
                f"the ready pattern {wait_for!r} is not a valid regular expression: {exc}"
            ) from None
    if not ready_timeout > 0:  # also rejects NaN
        raise UsageError(
            f"the ready timeout must be a positive number of seconds, not {ready_timeout}"
        )
    if cwd is not None and not os.path.isabs(cwd):
        raise UsageError(f"the working directory must be an absolute path, not {cwd!r}")
    return SpawnRequest(
        name,
        session,
        label,
        path,
        tuple(command),
        wait_for,
        ready_timeout,
        query_timeout,
        cwd,
        profile,
    )


def request_for(
    cfg: Config,
    name: str,
    command: Sequence[str] = (),
    *,
    socket_name: str | None = None,
    wait_for: str | None = None,
    ready_timeout: float | None = None,
    socket_dir: str | None = None,
    cwd: str | None = None,
    profile: str | None = None,
) -> SpawnRequest:
    """`make_request` with the config's protected sockets and timeouts (CLI, post-boot, bot)."""
    return make_request(
        name,
        command,
        socket_name=socket_name,
        wait_for=wait_for,
        ready_timeout=cfg.spawn.ready_timeout if ready_timeout is None else ready_timeout,
        protected=cfg.protected_sockets,
        socket_dir=socket_dir,
        query_timeout=cfg.health.timeout,
        cwd=cwd,
        profile=profile,
    )


def spawn_for(cfg: Config, request: SpawnRequest) -> SpawnResult:
    """`spawn` with the config's protected sockets and sweep timeout; the configured bot token
    is kept from the new server's environment whatever variable holds it (see secret.py)."""
    from forge_tmux.notify import hold_token_secret  # noqa: PLC0415

    hold_token_secret(cfg.telegram)
    return spawn(request, protected=cfg.protected_sockets, sweep_timeout=cfg.sweep.timeout)


# ---- argument vectors (pure) ---------------------------------------------------------------


def new_session_args(
    session: str, command: Sequence[str] = (), cwd: str | None = None
) -> tuple[str, ...]:
    """The `new-session` call; `-P -F` makes tmux say what it really created."""
    args: tuple[str, ...] = ("new-session", "-d", "-s", session, "-P", "-F", "#{pid} #{session_id}")
    if cwd is not None:
        args = (*args, "-c", cwd)
    if not command:
        return args
    if len(command) == 1:
        # tmux runs a single command argument through `sh -c` (as a shell string) and only
        # execs directly when there are two or more; a constant script keeps it an argv.
        command = ("/bin/sh", "-c", 'exec "$@"', "sh", command[0])
    return (*args, "--", *command)


def exact(session: str) -> str:
    """An exact session target: a bare name matches by prefix (`build` would find `build42`)."""
    return f"={session}"


def spawn_message(result_session: str, socket_name: str, cleaned: int, attempts: int) -> str:
    text = f"spawned {result_session} on {socket_name}"
    if cleaned:
        text += f" after cleaning {cleaned} stale socket{'s' if cleaned != 1 else ''}"
    if attempts > 1:
        text += f" (attempt {attempts})"
    return text


def pane_tail(text: str, lines: int = PANE_TAIL_LINES) -> str:
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


# ---- the harness ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Try:
    created: bool
    reason: str = ""
    retry: bool = False  # a socket-class failure: sweeping and trying again may help
    duplicate: bool = False
    server_pid: int | None = None


def spawn(
    request: SpawnRequest,
    *,
    protected: Iterable[str] = (),
    sweep_timeout: float = 2.0,
) -> SpawnResult:
    """Start the session described by `request` (see the module docstring for the flow).
    A verified session is marked as forge-tmux's (`snapshot.mark_args`: what `save` keeps,
    and the hook that records a deliberate end)."""
    protected = tuple(protected)
    socket_dir = os.path.dirname(request.socket_path)
    cleaned = _sweep(socket_dir, protected, sweep_timeout)
    where = f"{request.session} on {request.socket_name}"
    failed = f"could not spawn {where}"
    try:
        running, problem = _already_running(request)
        if running:
            error = f"session {where} is already running; nothing was replaced"
            return _result(request, Outcome.ALREADY_RUNNING, cleaned, 0, error, error)
        if problem:
            return _result(request, Outcome.FAILED, cleaned, 0, failed, problem)
        if request.command and shutil.which(request.command[0]) is None:
            # Otherwise tmux creates the session, the exec fails in the pane and the session
            # vanishes, a moment before or after the verification: found here, it is certain.
            problem = f"command not found or not executable: {request.command[0]}"
            return _result(request, Outcome.FAILED, cleaned, 0, failed, problem)
        plan = scope.current_plan(request.socket_name)
        reasons: list[str] = []
        for attempt in (1, 2):
            if attempt == 2:
                janitorstate.record_spawn_retry()
                _wait_until_gone(request.socket_path)
                cleaned += _sweep(socket_dir, protected, sweep_timeout)
            made = _create(request, plan)
            if made.created or made.duplicate:
                break
            reasons.append(f"attempt {attempt}: {made.reason}")
            if not made.retry:
                break
    except TmuxNotFound as exc:
        return _result(request, Outcome.FAILED, cleaned, 0, failed, str(exc))
    if made.duplicate:
        error = f"session {where} was started by someone else meanwhile; nothing was replaced"
        return _result(request, Outcome.ALREADY_RUNNING, cleaned, attempt, error, error)
    if not made.created:
        return _result(request, Outcome.FAILED, cleaned, attempt, failed, "; ".join(reasons))
    _mark(request)
    message = spawn_message(request.session, request.socket_name, cleaned, attempt)
    pid = made.server_pid
    if request.wait_for is None:
        return _result(request, Outcome.SPAWNED, cleaned, attempt, message, None, pid)
    ready, waited, error = _wait_ready(request)
    if ready is Outcome.SPAWNED:
        message += f", ready after {waited:.1f} s"
        return _result(request, ready, cleaned, attempt, message, None, pid)
    message += ", but it ended" if ready is Outcome.FAILED else ", but it is not ready"
    return _result(request, ready, cleaned, attempt, message, error, pid)


def _result(
    request: SpawnRequest,
    outcome: Outcome,
    cleaned: int,
    attempts: int,
    message: str,
    error: str | None,
    pid: int | None = None,
) -> SpawnResult:
    return SpawnResult(
        outcome,
        request.session,
        request.socket_name,
        request.socket_path,
        cleaned,
        attempts,
        message,
        error,
        pid,
    )


def _sweep(socket_dir: str, protected: tuple[str, ...], timeout: float) -> int:
    found = janitor.sweep([socket_dir], timeout=timeout, protected=protected)
    janitorstate.record_sweep(found.ok, found.removed)
    log_events(log, janitor.log_events(found))
    return found.removed


def _mark(request: SpawnRequest) -> None:
    """Mark the fresh session; a failure is a warning (the session runs, it is only not saved)."""
    import sys  # noqa: PLC0415

    from forge_tmux import snapshot  # noqa: PLC0415

    marked = _query(request, *snapshot.mark_args(request, sys.executable))
    if not marked.ok:
        log.warning(
            "could not mark %s on %s as forge-tmux's (it will not be saved): %s",
            request.session,
            request.socket_name,
            " ".join(marked.stderr.split()) or "timed out",
        )


def _query(request: SpawnRequest, *args: str) -> TmuxResult:
    return tmux.run(args, socket_name=request.socket_name, timeout=request.query_timeout)


def _already_running(request: SpawnRequest) -> tuple[bool, str]:
    """(session exists, a reason spawning cannot go on) from the socket and `has-session`."""
    if probe_path(request.socket_path).state is not SocketState.LIVE:
        return False, ""  # no server: nothing can be running (and has-session would not know)
    found = _query(request, "has-session", "-t", exact(request.session))
    if found.ok:
        return True, ""
    if found.timed_out:
        return False, (
            f"the server on {request.socket_name} does not answer within "
            f"{request.query_timeout:g} s "
            "(hung?); see forge-tmux health"
        )
    if found.error_kind is TmuxErrorKind.SOCKET:
        # The server is going away (kill-server returns before it stops accepting).
        _wait_until_gone(request.socket_path)
    return False, ""


def _wait_until_gone(path: str, timeout: float = GONE_TIMEOUT) -> None:
    """Wait until nothing listens on `path` any more, or `timeout`: a live server stays."""
    deadline = time.monotonic() + timeout
    while probe_path(path).state is SocketState.LIVE and time.monotonic() < deadline:
        time.sleep(0.01)


def saved_before_stop(wrapper: Sequence[str]) -> tuple[str, ...]:
    """The scope wrapper with `Before=forge-tmux-save.service` (pure): stop jobs run in reverse
    order, so at shutdown the save unit's stop (the save) runs before this scope is stopped.
    An ordering on a unit that is not installed is no error: it orders nothing."""
    if not wrapper or wrapper[-1] != "--":
        return tuple(wrapper)
    return (*wrapper[:-1], f"--property=Before={SAVE_UNIT}", "--")


def _create(request: SpawnRequest, plan: scope.ScopePlan) -> _Try:
    args = new_session_args(request.session, request.command, request.cwd)
    made = tmux.run(
        args,
        socket_name=request.socket_name,
        timeout=CREATE_TIMEOUT,
        wrapper=saved_before_stop(plan.wrapper),
        env=plan.environ(),
    )
    if plan.wrapper and scope.scope_failed(made.returncode, made.stdout, made.stderr):
        scope.note_fallback(made.stderr.strip().splitlines()[0])
        made = tmux.run(args, socket_name=request.socket_name, timeout=CREATE_TIMEOUT)
    if made.timed_out:
        return _Try(False, f"tmux new-session did not return within {CREATE_TIMEOUT:g} s")
    kind = made.error_kind
    if kind is TmuxErrorKind.DUPLICATE:
        return _Try(False, made.stderr.strip(), duplicate=True)
    printed = _CREATED.match(made.stdout)
    # With an error text tmux created nothing, whatever it exited with: one check is enough.
    pauses = VERIFY_PAUSES if kind is TmuxErrorKind.NONE else (0.0,)
    if _verify(request, pauses):
        return _Try(True, server_pid=int(printed.group(1)) if printed else None)
    if kind is not TmuxErrorKind.NONE or made.returncode != 0:
        text = " ".join(made.stderr.split()) or f"tmux exited {made.returncode}"
        return _Try(False, text, retry=kind is TmuxErrorKind.SOCKET)
    if printed:
        return _Try(
            False,
            f"session {request.session} ended right after it was created "
            "(its command exited or could not be started)",
        )
    return _Try(False, "tmux exited 0 but created no session", retry=True)


def _verify(request: SpawnRequest, pauses: Sequence[float]) -> bool:
    for pause in pauses:
        time.sleep(pause)
        if _query(request, "has-session", "-t", exact(request.session)).ok:
            return True
    return False


def _wait_ready(request: SpawnRequest) -> tuple[Outcome, float, str]:
    """Poll the pane until `wait_for` matches: (SPAWNED, seconds waited, "") when it did,
    NOT_READY on timeout (the session stays), FAILED when the session ended meanwhile."""
    assert request.wait_for is not None  # noqa: S101 - the caller checked
    pattern = re.compile(request.wait_for, re.MULTILINE)
    started = time.monotonic()
    deadline = started + request.ready_timeout
    pause = 0.02
    seen = ""
    while True:
        # `=NAME:` (with the colon): capture-pane wants a pane, and `=NAME` alone is no pane.
        pane = _query(request, "capture-pane", "-p", "-J", "-S", "-", "-t", f"={request.session}:")
        if pane.ok:
            seen = pane.stdout
            if pattern.search(seen):
                return Outcome.SPAWNED, time.monotonic() - started, ""
        elif pane.error_kind in (TmuxErrorKind.SOCKET, TmuxErrorKind.NO_SESSION):
            return (
                Outcome.FAILED,
                0.0,
                _with_tail(
                    f"session ended before {request.wait_for!r} appeared ({pane.stderr.strip()})",
                    seen,
                ),
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return (
                Outcome.NOT_READY,
                0.0,
                _with_tail(
                    f"ready pattern {request.wait_for!r} did not appear within "
                    f"{request.ready_timeout:g} s; the session is left running for inspection",
                    seen,
                ),
            )
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.2)


def _with_tail(error: str, pane: str) -> str:
    tail = pane_tail(pane)
    return f"{error}; last lines of the pane:\n{tail}" if tail else f"{error}; the pane was empty"
