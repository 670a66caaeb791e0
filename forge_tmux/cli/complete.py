"""Shell completion of session names, for commands that take a session NAME (attach, peek, kill).

Use it as `typer.Argument(autocompletion=complete.session_names)`. It is imported by those
commands' modules only, so the sweep's cold start never pays for it; Typer calls it only while
the shell asks for completions (`_FORGE_TMUX_COMPLETE` set).

Read-only, as the health probe: a socket is asked `list-sessions` (which never starts a server)
only after a non-blocking connect() showed a listener; a dead or hung server yields no names,
within a short budget, so a Tab key never waits long and never resurrects anything.
"""

from __future__ import annotations

import os
from typing import Final

from forge_tmux import tmux
from forge_tmux.paths import tmux_socket_dir
from forge_tmux.probe import SocketState, probe_connect

SPAWN_PREFIX: Final = "spawn-"
# A Tab key must answer quickly: per server, and for all of them together.
PER_SERVER_S: Final = 0.3
BUDGET_S: Final = 1.5


def spawned_sockets(directory: str | None = None) -> list[str]:
    """Paths of the spawn-* sockets in the user's tmux directory (sorted; none if unreadable)."""
    where = directory or tmux_socket_dir()
    try:
        names = sorted(os.listdir(where))
    except OSError:
        return []
    return [os.path.join(where, n) for n in names if n.startswith(SPAWN_PREFIX)]


def names_on(path: str, timeout: float = PER_SERVER_S) -> list[str]:
    """Session names on one socket; [] unless a server listens there and answers in time."""
    if probe_connect(path).state is not SocketState.LIVE:
        return []
    try:
        result = tmux.run(
            ("list-sessions", "-F", "#{session_name}"), socket_path=path, timeout=timeout
        )
    except tmux.TmuxNotFound:
        return []
    return result.stdout.splitlines() if result.ok else []


def session_names(incomplete: str) -> list[str]:
    """Names of running spawned sessions that start with what was typed so far."""
    import time  # noqa: PLC0415

    deadline = time.monotonic() + BUDGET_S
    found: list[str] = []
    for path in spawned_sockets():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        found += names_on(path, min(PER_SERVER_S, left))
    return sorted({n for n in found if n.startswith(incomplete)})
