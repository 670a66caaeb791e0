"""The one door to the tmux binary.

Every call: an argument vector (never a shell string), always `-L NAME` or `-S PATH` (without
them `$TMUX` silently redirects commands to another server), `TMUX` removed from the environment,
forge-tmux's secrets too (a server keeps the environment it starts with as its global environment
and hands it to every pane: see `secret.py`), and a timeout that kills (a tmux client blocked on
a full backlog ignores SIGTERM: `procs.run` sends SIGKILL). A non-zero exit is data, not an
exception; a missing binary is its own error. tmux's stderr texts are recognised in exactly one
place, `classify_error`. The binary is looked up once per process (and PATH value).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from enum import StrEnum

from forge_tmux import procs, secret

# Raised here; `tmux.TmuxNotFound` is how callers (spawn, boot, health, doctor) name it.
from forge_tmux.errors import TmuxNotFound as TmuxNotFound  # noqa: PLC0414 (a re-export)


class TmuxErrorKind(StrEnum):
    NONE = "none"  # no error text
    SOCKET = "socket"  # the socket or its server is the problem: sweep and retry may help
    NO_SESSION = "no_session"  # the server answered; the session is not there
    DUPLICATE = "duplicate"  # a session of that name already exists
    OTHER = "other"


# Substrings of tmux client messages that mean "the socket/server is the problem"
# (tmux 3.x; `lost server` is the older spelling of `server exited unexpectedly`).
_SOCKET_ERRORS = (
    "error creating",
    "address already in use",
    "server exited unexpectedly",
    "lost server",
    "no server running",
    "error connecting to",
    "protocol version mismatch",
    "access not allowed",
)


def classify_error(stderr: str) -> TmuxErrorKind:
    """What kind of failure a tmux client's stderr reports (exit codes lie, so read the text)."""
    text = stderr.strip().lower()
    if not text:
        return TmuxErrorKind.NONE
    if any(marker in text for marker in _SOCKET_ERRORS):
        return TmuxErrorKind.SOCKET
    if "duplicate session" in text:
        return TmuxErrorKind.DUPLICATE
    if "can't find session" in text or "session not found" in text:
        return TmuxErrorKind.NO_SESSION
    return TmuxErrorKind.OTHER


class TmuxResult(procs.Ran):
    """The shared record of a run, read the tmux way: the error is in the text."""

    __slots__ = ()

    @property
    def error_kind(self) -> TmuxErrorKind:
        return classify_error(self.stderr)

    @property
    def ok(self) -> bool:
        """Exit 0 *and* no error text: tmux exits 0 on some failures (`error creating ...`)."""
        return self.returncode == 0 and self.error_kind is TmuxErrorKind.NONE


def tmux_binary() -> str:
    found = procs.which("tmux")
    if found is None:
        raise TmuxNotFound("tmux not found on PATH")
    return found


def argv_for(
    args: Sequence[str],
    *,
    socket_name: str | None = None,
    socket_path: str | None = None,
    binary: str = "tmux",
    config_file: str | None = None,
) -> tuple[str, ...]:
    """The exact argument vector of a tmux call (pure, so it is tested as a tuple)."""
    if (socket_name is None) == (socket_path is None):
        raise ValueError("exactly one of socket_name and socket_path is required")
    head: list[str] = [binary]
    if config_file is not None:
        head += ["-f", config_file]
    head += ["-L", socket_name] if socket_name is not None else ["-S", str(socket_path)]
    return (*head, *args)


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for tmux: ours minus TMUX/TMUX_PANE, which redirect commands elsewhere,
    and minus every variable that carries a secret, which no session may inherit."""
    base = secret.scrub_env(os.environ if env is None else env)
    base.pop("TMUX", None)
    base.pop("TMUX_PANE", None)
    return base


def run(
    args: Sequence[str],
    *,
    socket_name: str | None = None,
    socket_path: str | None = None,
    timeout: float,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
    wrapper: Sequence[str] = (),
) -> TmuxResult:
    """Run one tmux command against one socket. `wrapper` prefixes the argv (e.g. a
    `systemd-run --user --scope` so that a server started by a service outlives it)."""
    argv = (
        *wrapper,
        *argv_for(
            args,
            socket_name=socket_name,
            socket_path=socket_path,
            binary=tmux_binary(),
            config_file=config_file,
        ),
    )
    try:
        ran = procs.run(argv, env=clean_env(env), timeout=timeout)
    except FileNotFoundError as exc:
        raise TmuxNotFound(f"cannot run {argv[0]}: {exc.strerror}") from None
    return TmuxResult(ran.argv, ran.returncode, ran.stdout, ran.stderr)
