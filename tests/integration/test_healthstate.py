"""The memory between health runs: each event (gone, hung, recovered, orphaned) reported once."""

from __future__ import annotations

import json
import os
import signal
import stat

from forge_tmux import health, healthstate
from forge_tmux.health import DirCheck, DirHealth, Health, HealthResult, SocketHealth
from forge_tmux.healthstate import EventKind
from forge_tmux.orphans import Orphan
from forge_tmux_testing.processes import pid_alive, wait_for
from forge_tmux_testing.tmux_world import TmuxEnv, needs_tmux

D = "/run/t/tmux-1000"
A = f"{D}/a"


def result(*sockets: SocketHealth, orphans: tuple[Orphan, ...] = (), dirs: str = D) -> HealthResult:
    return HealthResult(dirs=(DirHealth(dirs, DirCheck.CHECKED),), sockets=sockets, orphans=orphans)


def live(path: str = A, pid: int = 7) -> SocketHealth:
    return SocketHealth(path, Health.LIVE, 1, "answered", pid, 1000)


def hung(path: str = A, pid: int = 7) -> SocketHealth:
    return SocketHealth(path, Health.HUNG, None, "server process 7 is stopped", pid, 1000)


def dead(path: str = A) -> SocketHealth:
    return SocketHealth(path, Health.DEAD, None, "no server listening", None, 1000)


def kinds(events: list[healthstate.Event]) -> list[tuple[str, str]]:
    return [(e.kind.value, e.path) for e in events]


def run(memory: healthstate.Memory, *results: HealthResult) -> list[list[tuple[str, str]]]:
    out = []
    for r in results:
        events, memory = healthstate.diff(memory, r)
        out.append(kinds(events))
    return out


def test_gone_is_reported_once() -> None:
    runs = run(healthstate.empty(), result(live()), result(dead()), result(dead()), result())
    assert runs == [[], [("gone", A)], [], []]


def test_a_swept_socket_is_gone_too() -> None:
    assert run(healthstate.empty(), result(live()), result()) == [[], [("gone", A)]]


def test_hung_once_per_event_then_recovered() -> None:
    runs = run(
        healthstate.empty(),
        result(live()),
        result(hung()),
        result(hung()),
        result(live()),
        result(hung()),
    )
    assert runs == [[], [("hung", A)], [], [("recovered", A)], [("hung", A)]]


def test_hung_on_first_sight_is_an_event() -> None:
    assert run(healthstate.empty(), result(hung()), result(hung())) == [[("hung", A)], []]


def test_unknown_or_unlooked_keeps_the_memory() -> None:
    unknown = SocketHealth(A, Health.UNKNOWN, None, "?", None, 1000)
    elsewhere = result(dirs="/run/t/other")
    unreadable = HealthResult(dirs=(DirHealth(D, DirCheck.UNREADABLE),), sockets=())
    runs = run(
        healthstate.empty(),
        result(live()),
        result(unknown),
        elsewhere,
        unreadable,
        result(dead()),
    )
    assert runs == [[], [], [], [], [("gone", A)]]


def test_orphaned_once_and_recovered_not_gone() -> None:
    o = Orphan(7, 1000, A, 99, "socket file deleted")
    runs = run(
        healthstate.empty(),
        result(live()),
        result(orphans=(o,)),
        result(orphans=(o,)),
        result(live()),
    )
    assert runs == [[], [("orphaned", A)], [], [("recovered", A)]]


def test_event_describes_itself() -> None:
    _, remembered = healthstate.diff(healthstate.empty(), result(live()))
    [event], _ = healthstate.diff(remembered, result())
    assert event.describe() == f"tmux server gone: {A} (pid 7; socket removed)"
    assert event.to_json() == {"kind": "gone", "path": A, "pid": 7, "detail": "socket removed"}


def test_update_persists_atomically_per_consumer(tmp_path: os.PathLike[str]) -> None:
    state = os.fspath(tmp_path)
    assert healthstate.update(result(live()), directory=state) == []
    [event] = healthstate.update(result(dead()), directory=state)
    assert event.kind is EventKind.GONE
    assert healthstate.update(result(dead()), directory=state) == []
    # Another consumer has its own memory: it never saw the server live.
    assert healthstate.update(result(dead()), directory=state, consumer="boot") == []

    path = healthstate.memory_path("notify", state)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as fh:
        assert json.load(fh)["version"] == healthstate.VERSION
    assert sorted(n for n in os.listdir(state) if not n.endswith(".lock")) == [
        "health-boot.json",
        "health-notify.json",
    ]


def test_a_corrupt_memory_is_an_empty_one(tmp_path: os.PathLike[str]) -> None:
    state = os.fspath(tmp_path)
    with open(healthstate.memory_path("notify", state), "w") as fh:
        fh.write("{not json")
    assert kinds(healthstate.update(result(hung()), directory=state)) == [("hung", A)]


@needs_tmux
def test_a_real_server_killed_is_gone_once(tmux_env: TmuxEnv) -> None:
    server = tmux_env.start("worker")
    state = os.path.join(tmux_env.root, "state")

    def check() -> list[tuple[str, str]]:
        found = health.collect([tmux_env.sockdir], timeout=2, orphans=False)
        return kinds(healthstate.update(found, directory=state))

    assert check() == []
    os.kill(server.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(server.pid))
    assert check() == [("gone", server.path)]
    assert check() == []
