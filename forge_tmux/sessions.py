"""Living with one socket per session: list, find, peek at, attach to and end sessions.

`list_sessions` is read-only and built on the health check: the one classifier (`probe`) says
which sockets have a server, `health.collect` asks every listening server at once, so hung
servers cost one shared timeout, never one per socket; a dead socket is shown, never started.
Only side-effect-free tmux commands are used (`list-sessions`, `capture-pane`); the one that ends
something, `kill-session`, always takes an exact target (`=NAME`) on the one socket it resolved.

A NAME is resolved the way `spawn` resolves it (its safe name and `spawn-<name>` label), so the
hashed label is never typed by hand; a session of that exact name on another socket (`homebase`,
the default socket) is found by listing. Protected sockets are never ended.
"""

from __future__ import annotations

import difflib
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from forge_tmux import health, tmux
from forge_tmux.errors import UsageError
from forge_tmux.paths import display
from forge_tmux.probe import SocketState, probe_path

# One line per session; the name comes last because it is the one field that may hold a tab.
_FIELDS: Final = (
    "#{session_windows}",
    "#{session_attached}",
    "#{session_created}",
    "#{pane_current_command}",
    "#{@forge_tmux}",
    "#{session_name}",
)
LIST_FORMAT: Final = "\t".join(_FIELDS)
PEEK_DEFAULT: Final = 20
PEEK_MAX: Final = 10_000
GONE_TIMEOUT: Final = 2.0


@dataclass(frozen=True, slots=True)
class Session:
    name: str
    socket_name: str
    socket_path: str
    state: str  # live (dead/hung servers have no sessions to list)
    windows: int
    attached: int
    created: int  # epoch seconds
    command: str  # the active pane's current command
    spawned: bool  # started by forge-tmux (the spawn harness marks its sessions)
    mark: str = ""  # the harness's mark (`@forge_tmux`, JSON), "" on sessions it did not start

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "socket_name": self.socket_name,
            "socket_path": display(self.socket_path),
            "state": self.state,
            "windows": self.windows,
            "attached": self.attached,
            "created": self.created,
            "command": self.command,
            "spawned": self.spawned,
        }


@dataclass(frozen=True, slots=True)
class Listing:
    sessions: tuple[Session, ...]
    dead: tuple[str, ...]  # socket paths with nobody listening (stale)
    hung: tuple[str, ...]  # servers that did not answer within the shared timeout
    unknown: tuple[str, ...] = ()
    answered: tuple[str, ...] = ()  # socket paths whose server listed its sessions

    def to_json(self) -> dict[str, object]:
        return {
            "sessions": [s.to_json() for s in self.sessions],
            "dead": [display(p) for p in self.dead],
            "hung": [display(p) for p in self.hung],
        }

    def named(self, name: str) -> list[Session]:
        return [s for s in self.sessions if s.name == name]


def parse_line(line: str, socket_path: str) -> Session | None:
    """One `list-sessions -F LIST_FORMAT` line (pure); None for what is not such a line."""
    parts = line.split("\t", len(_FIELDS) - 1)
    if len(parts) != len(_FIELDS):
        return None
    windows, attached, created, command, mark, name = parts
    if not (windows.isdigit() and attached.isdigit() and created.isdigit()):
        return None
    return Session(
        name=name,
        socket_name=os.path.basename(socket_path),
        socket_path=socket_path,
        state="live",
        windows=int(windows),
        attached=int(attached),
        created=int(created),
        command=command,
        spawned=bool(mark),
        mark=mark,
    )


def _sessions_of(path: str, timeout: float) -> list[Session] | str:
    """The sessions of the server at `path`, or why it could not say: "hung" when it did not
    answer in time, "gone" when it exited meanwhile or anything else went wrong."""
    try:
        listed = tmux.run(("list-sessions", "-F", LIST_FORMAT), socket_path=path, timeout=timeout)
    except tmux.TmuxNotFound:
        return "gone"
    if listed.timed_out:
        return "hung"
    if not listed.ok:
        # An empty server (exit-empty off, between its last session and its exit) says so.
        return [] if "no sessions" in listed.stderr else "gone"
    found = (parse_line(line, path) for line in listed.stdout.splitlines())
    return [s for s in found if s is not None]


def list_sessions(dirs: Sequence[str], *, timeout: float = 2.0, parallel: int = 32) -> Listing:
    """Every session on every socket of `dirs` (read-only; see the module docstring).

    The health check settles each socket (live, dead, hung) with one shared timeout; the live
    ones are then listed in parallel, again under one timeout for all of them.
    """
    checked = health.collect(dirs, timeout=timeout, parallel=parallel, orphans=False)
    by_state: dict[health.Health, list[str]] = {h: [] for h in health.Health}
    for sock in checked.sockets:
        by_state[sock.state].append(sock.path)
    live = by_state[health.Health.LIVE]
    hung = list(by_state[health.Health.HUNG])
    sessions: list[Session] = []
    answered: list[str] = []
    if live:
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(live)))) as pool:
            answers = list(pool.map(lambda p: _sessions_of(p, timeout), live))
        for path, answer in zip(live, answers, strict=True):
            if answer == "hung":
                hung.append(path)
            elif isinstance(answer, list):
                answered.append(path)
                sessions.extend(answer)
    sessions.sort(key=lambda s: (s.socket_name, s.name))
    return Listing(
        tuple(sessions),
        tuple(by_state[health.Health.DEAD]),
        tuple(sorted(hung)),
        tuple(by_state[health.Health.UNKNOWN]),
        tuple(answered),
    )


def age(created: int, now: float | None = None) -> str:
    """`45s`, `12m`, `3h`, `2d` (pure)."""
    seconds = max(0, int((time.time() if now is None else now) - created))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def render_listing(listing: Listing, now: float | None = None) -> str:
    """One line per session, then the dead and hung sockets (plain text)."""
    lines = [
        f"{s.name:24} {s.socket_name:28} {s.state:5} {s.windows:>2}w {s.attached:>2}a "
        f"{age(s.created, now):>4} {'spawned' if s.spawned else '-':8} {s.command}"
        for s in listing.sessions
    ]
    lines += [f"{'-':24} {os.path.basename(p):28} dead  (stale socket)" for p in listing.dead]
    lines += [f"{'-':24} {os.path.basename(p):28} hung  (does not answer)" for p in listing.hung]
    return "\n".join(lines) if lines else "no tmux sessions"


# ---- finding one session ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A session that exists right now, on one socket."""

    session: str
    socket_name: str
    socket_path: str

    def where(self) -> str:
        return f"{self.session} on {self.socket_name}"


class NotRunning(Exception):
    """No session of that name runs; the message names close names (exit 1)."""


class Refused(Exception):
    """The session is on a protected socket, or the name is ambiguous (exit 1)."""


def spawn_target(name: str, socket_dir: str) -> Target:
    """Where `spawn NAME` would have put it (UsageError for a name spawn would refuse)."""
    from forge_tmux import spawn  # noqa: PLC0415 - the name rules live there

    request = spawn.make_request(name, socket_dir=socket_dir)
    return Target(request.session, request.socket_name, request.socket_path)


def _has_session(target: Target, timeout: float) -> bool:
    if probe_path(target.socket_path).state is not SocketState.LIVE:
        return False  # no server; has-session would not start one, but need not be asked
    found = tmux.run(
        ("has-session", "-t", f"={target.session}"),
        socket_path=target.socket_path,
        timeout=timeout,
    )
    return found.ok


def resolve(
    name: str,
    dirs: Sequence[str],
    *,
    socket_name: str | None = None,
    timeout: float = 2.0,
) -> Target:
    """The running session NAME: first where spawn puts it, then by its exact name on any
    socket of `dirs`. NotRunning (with close names) or Refused (ambiguous) otherwise."""
    if not name:
        raise UsageError("the session name must not be empty")
    if "\n" in name or "\0" in name:
        raise UsageError("the session name must be one line")
    socket_dir = dirs[0]
    if socket_name is not None:
        if not socket_name or "/" in socket_name or socket_name in (".", ".."):
            raise UsageError(f"--socket-name {socket_name!r} is not a socket label")
        path = os.path.join(socket_dir, socket_name)
        target = Target(name, socket_name, path)
        if _has_session(target, timeout):
            return target
        raise NotRunning(f"no session {name!r} on socket {socket_name}")
    try:
        spawned = spawn_target(name, socket_dir)
    except UsageError:
        spawned = None  # e.g. an empty-after-cleaning name; it may still exist elsewhere
    if spawned is not None and _has_session(spawned, timeout):
        return spawned
    listing = list_sessions(dirs, timeout=timeout)
    matches = listing.named(name)
    if len(matches) == 1:
        found = matches[0]
        return Target(found.name, found.socket_name, found.socket_path)
    if len(matches) > 1:
        sockets = ", ".join(s.socket_name for s in matches)
        raise Refused(
            f"{name!r} runs on {len(matches)} sockets ({sockets}); say which with --socket-name"
        )
    raise NotRunning(not_running_text(name, [s.name for s in listing.sessions]))


def not_running_text(name: str, known: Iterable[str]) -> str:
    """One line: not running, and the closest names that are (pure)."""
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if not close:
        close = [n for n in names if name.lower() in n.lower()][:3]
    text = f"no session {name!r} is running"
    if close:
        text += f"; close names: {', '.join(close)}"
    elif names:
        text += " (see forge-tmux ls)"
    return text


def protected(target: Target, protected_sockets: Iterable[str]) -> bool:
    return target.socket_name in frozenset(protected_sockets)


# ---- peek, kill, attach ----------------------------------------------------------------------


def peek(target: Target, lines: int = PEEK_DEFAULT, *, timeout: float = 2.0) -> str:
    """The last `lines` lines of the session's active pane (history included), as plain text.
    Trailing empty lines (the unused part of the screen) are not counted."""
    if not 1 <= lines <= PEEK_MAX:
        raise UsageError(f"--lines must be between 1 and {PEEK_MAX}, not {lines}")
    pane = f"={target.session}:"  # with the colon: capture-pane wants a pane
    shown = _ask(
        target, "read", "capture-pane", "-p", "-J", "-S", f"-{lines}", "-t", pane, timeout=timeout
    )
    text = shown.stdout.splitlines()
    while text and not text[-1].strip():
        text.pop()
    return "\n".join(text[-lines:])


def _ask(target: Target, what: str, *args: str, timeout: float) -> tmux.TmuxResult:
    """One tmux command on the target's socket; NotRunning (a one-line reason) unless it did."""
    done = tmux.run(args, socket_path=target.socket_path, timeout=timeout)
    if done.timed_out:
        raise NotRunning(f"the server of {target.where()} does not answer (hung?)")
    if not done.ok:
        raise NotRunning(f"cannot {what} {target.where()}: {' '.join(done.stderr.split())}")
    return done


@dataclass(frozen=True, slots=True)
class KillResult:
    target: Target
    server_exited: bool  # it was the server's last session
    socket_removed: bool  # and forge-tmux removed the stale socket file it left

    def message(self) -> str:
        text = f"killed {self.target.where()}"
        if self.socket_removed:
            text += "; the server exited and its socket file was removed"
        elif self.server_exited:
            text += "; the server exited"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "ok": True,
            "session": self.target.session,
            "socket_name": self.target.socket_name,
            "socket_path": display(self.target.socket_path),
            "server_exited": self.server_exited,
            "socket_removed": self.socket_removed,
            "message": self.message(),
        }


def kill(
    target: Target,
    *,
    protected_sockets: Iterable[str] = ("homebase",),
    timeout: float = 2.0,
    sweep_timeout: float = 2.0,
) -> KillResult:
    """End exactly that session (`kill-session -t =NAME` on its socket). When it was the last,
    wait for the server to go, then remove the stale file it leaves through the janitor (tmux's
    lock, the same-inode re-check, the kernel's bound-file check): never by a plain unlink."""
    if protected(target, protected_sockets):
        raise Refused(f"socket {target.socket_name} is protected; forge-tmux never kills there")
    _ask(target, "kill", "kill-session", "-t", f"={target.session}", timeout=timeout)
    deadline = time.monotonic() + GONE_TIMEOUT
    state = probe_path(target.socket_path).state
    while state is SocketState.LIVE and time.monotonic() < deadline:
        if _any_session(target, timeout):
            return KillResult(target, False, False)  # others remain: the server stays
        time.sleep(0.02)
        state = probe_path(target.socket_path).state
    if state is not SocketState.STALE:
        return KillResult(target, state is not SocketState.LIVE, False)
    from forge_tmux import sweep as janitor  # noqa: PLC0415

    swept = janitor.sweep(
        [os.path.dirname(target.socket_path)],
        timeout=sweep_timeout,
        protected=protected_sockets,
        only=[os.path.basename(target.socket_path)],
    )
    removed = any(s.removed and s.path == target.socket_path for s in swept.sockets)
    return KillResult(target, True, removed)


def _any_session(target: Target, timeout: float) -> bool:
    listed = tmux.run(
        ("list-sessions", "-F", "#{session_id}"), socket_path=target.socket_path, timeout=timeout
    )
    return listed.ok and bool(listed.stdout.strip())


@dataclass(frozen=True, slots=True)
class AttachPlan:
    argv: tuple[str, ...]
    env: dict[str, str]
    message: str  # said before running argv ("" when nothing needs saying)
    replace: bool  # exec argv (a plain attach) rather than run it and return


def attach_plan(target: Target, environ: dict[str, str] | None = None) -> AttachPlan:
    """How to attach (pure apart from finding tmux).

    Outside tmux: exec `tmux -S PATH attach-session -t =NAME`. Inside tmux the client cannot
    `switch-client` to a session of another server (every spawned session has its own), and
    attaching in place would nest tmux in the current pane. So, as a tmux user expects of a new
    session, it opens a new window in the current tmux running that attach (with TMUX cleared
    for it, which tmux otherwise refuses as nesting), and says how to get back.
    """
    env = dict(os.environ if environ is None else environ)
    binary = tmux.tmux_binary()
    attach = tmux.argv_for(
        ("attach-session", "-t", f"={target.session}"),
        socket_path=target.socket_path,
        binary=binary,
    )
    outer = env.get("TMUX", "")
    if not outer:
        return AttachPlan(attach, tmux.clean_env(env), "", replace=True)
    outer_socket = outer.split(",", 1)[0]
    window = (
        binary,
        "-S",
        outer_socket,
        "new-window",
        "-n",
        target.session[:32],
        "--",
        "env",
        "-u",
        "TMUX",
        "-u",
        "TMUX_PANE",
        *attach,
    )
    message = (
        f"opened {target.where()} in a new window of this tmux (a nested client: "
        "its prefix key is pressed twice; detach with prefix prefix d)"
    )
    return AttachPlan(window, tmux.clean_env(env), message, replace=False)
