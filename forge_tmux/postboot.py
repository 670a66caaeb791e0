"""`forge-tmux post-boot`: start the `[[boot.sessions]]` of the config, each on its own socket.

Every entry is validated before the first one is started, so a typo in the config never leaves
half the sessions running. A session that is already running is reported, not an error (running
post-boot twice is harmless).
"""

from __future__ import annotations

from dataclasses import dataclass

from forge_tmux.config import Config
from forge_tmux.errors import UsageError
from forge_tmux.snapshot import RestoreResult
from forge_tmux.snapshot import restore as restore_snapshot
from forge_tmux.spawn import Outcome, SpawnRequest, SpawnResult, request_for, spawn_for


@dataclass(frozen=True, slots=True)
class PostBootResult:
    sessions: tuple[SpawnResult, ...]

    @property
    def ok(self) -> bool:
        return all(s.outcome in (Outcome.SPAWNED, Outcome.ALREADY_RUNNING) for s in self.sessions)

    @property
    def failed(self) -> tuple[SpawnResult, ...]:
        return tuple(
            s for s in self.sessions if s.outcome not in (Outcome.SPAWNED, Outcome.ALREADY_RUNNING)
        )

    def summary(self) -> str:
        started = sum(1 for s in self.sessions if s.outcome is Outcome.SPAWNED)
        running = sum(1 for s in self.sessions if s.outcome is Outcome.ALREADY_RUNNING)
        return f"post-boot: {started} started, {running} already running, {len(self.failed)} failed"

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "sessions": [{**s.to_json(), "status": s.outcome.value} for s in self.sessions],
            "summary": self.summary(),
        }


def requests(cfg: Config, socket_dir: str | None = None) -> list[SpawnRequest]:
    """Validate every entry; UsageError names the entry that is wrong."""
    made: list[SpawnRequest] = []
    sockets: dict[str, str] = {}
    for index, entry in enumerate(cfg.boot.sessions):
        try:
            request = request_for(
                cfg,
                entry.name,
                entry.command,
                socket_name=entry.socket_name,
                wait_for=entry.wait_for,
                socket_dir=socket_dir,
            )
        except UsageError as exc:
            raise UsageError(f"boot.sessions[{index}] ({entry.name!r}): {exc}") from None
        key = f"{request.socket_name}/{request.session}"
        if key in sockets:
            raise UsageError(
                f"boot.sessions[{index}] ({entry.name!r}) is the same session as {sockets[key]!r}"
            )
        sockets[key] = entry.name
        made.append(request)
    return made


def post_boot(cfg: Config) -> PostBootResult:
    """Spawn every boot session of `cfg` (raises UsageError before starting any when one is bad).

    One after the other: a session's ready wait delays the next one, and the order of the
    config is the order of starting (a later session may rely on an earlier one).
    """
    planned = requests(cfg)
    return PostBootResult(tuple(spawn_for(cfg, request) for request in planned))


def restore(cfg: Config) -> RestoreResult:
    """`post-boot --restore`: the saved snapshot back, through the harness (see snapshot)."""
    return restore_snapshot(cfg)
