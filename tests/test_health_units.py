"""Pure parts of health and orphans: the ss parser, renderers, orphan proof (Nagios: see
test_nagios.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forge_tmux import health
from forge_tmux.health import DirCheck, DirHealth, Health, HealthResult, SocketHealth
from forge_tmux.orphans import (
    Listener,
    Orphan,
    TmuxServer,
    decode_ss_dev,
    find_orphans,
    parse_ss,
    ss_argv,
)

SS = """\
u_str LISTEN 0      128       /tmp/hx.9aAS/tmux-0/a 9872            * 0    users:(("tmux: server",pid=7653,fd=6)) <-> ino:2146673 dev:0/65024 peers:
u_str LISTEN 0      128    /dev/shm/ft/tmux-0/with space 3869 * 0 users:(("tmux: server",pid=2361,fd=6),("tmux: server",pid=2362,fd=3)) <-> ino:5 dev:0/27 peers:
u_str LISTEN 0      4096   @/tmp/.X11-unix/X0 1234 * 0 users:(("Xorg",pid=1,fd=5)) <-> peers:
u_seq LISTEN 0      128    /run/other.sock 777 * 0 <-> ino:42 dev:0/24 peers:
u_str LISTEN 0      128    * 555 * 0 users:(("x",pid=3,fd=3)) <-> peers:
"""  # noqa: E501 - real ss lines


def test_parse_ss() -> None:
    assert parse_ss(SS) == [
        Listener("/tmp/hx.9aAS/tmux-0/a", 2146673, os.makedev(254, 0), (7653,)),
        Listener("/dev/shm/ft/tmux-0/with space", 5, os.makedev(0, 27), (2361, 2362)),
        Listener("/run/other.sock", 42, os.makedev(0, 24), ()),
    ]
    assert ss_argv() == ("ss", "-x", "-l", "-p", "-e", "-H")


@pytest.mark.parametrize("path", ["/tmp", "/dev/shm", "/"])
def test_decode_ss_dev_matches_stat(path: str) -> None:
    dev = os.stat(path).st_dev
    kernel = (os.major(dev) << 20) | os.minor(dev)
    # What ss prints: glibc's major()/minor() applied to the kernel's encoding.
    ss_major = (kernel >> 8) & 0xFFF
    ss_minor = (kernel & 0xFF) | ((kernel >> 12) & ~0xFF)
    assert decode_ss_dev(ss_major, ss_minor) == dev


def test_find_orphans_needs_proof(tmp_path: os.PathLike[str]) -> None:
    root = os.fspath(tmp_path)
    present = os.path.join(root, "present")
    replaced = os.path.join(root, "replaced")
    deleted = os.path.join(root, "deleted")
    for path in (present, replaced):
        with open(path, "w"):
            pass
    ino = os.stat(present).st_ino
    listeners = [
        Listener(present, ino, os.stat(present).st_dev, (1,)),
        Listener(replaced, 1, None, (2,)),
        Listener(deleted, 3, None, (3,)),
        Listener(os.path.join("/elsewhere", "x"), 4, None, (4,)),
    ]
    servers = [TmuxServer(pid, 0, 0.0) for pid in (1, 2, 3, 4, 5)]

    found = find_orphans(servers, listeners, frozenset({root}))

    assert [(o.pid, o.reason.split(" (")[0]) for o in found] == [
        (3, "socket file deleted"),
        (2, "path now holds another file that is not a socket"),
    ]
    # Without a directory filter the one elsewhere counts too; pid 5 has no listener: no proof.
    assert {o.pid for o in find_orphans(servers, listeners, None)} == {2, 3, 4}


def sample(*states: Health, orphans: int = 0, dirs: DirCheck = DirCheck.CHECKED) -> HealthResult:
    sockets = tuple(
        SocketHealth(f"/t/{i}", s, 2 if s is Health.LIVE else None, "", None, 0)
        for i, s in enumerate(states)
    )
    found = tuple(Orphan(9, 0, f"/t/o{i}", 1, "socket file deleted") for i in range(orphans))
    return HealthResult((DirHealth("/t", dirs),), sockets, found, timestamp=1.0, duration_s=0.5)


def test_row() -> None:
    three = sample(Health.LIVE, Health.LIVE, Health.LIVE, Health.DEAD)
    assert health.render_row(three) == "tmux sockets: 3 live, 1 dead, 0 hung, 0 unknown"
    assert health.render_row(sample(Health.LIVE, orphans=1)) == (
        "tmux sockets: 1 live, 0 dead, 0 hung, 0 unknown, 1 orphaned"
    )


def test_prometheus_and_json_shapes() -> None:
    result = sample(Health.LIVE, Health.DEAD, Health.HUNG, orphans=2)
    families = {f.name: f for f in text_string_to_metric_families(health.render_prometheus(result))}
    assert {s.labels["state"]: s.value for s in families["forge_tmux_sockets"].samples} == {
        "live": 1,
        "dead": 1,
        "hung": 1,
        "unknown": 0,
    }
    assert families["forge_tmux_orphaned_servers"].samples[0].value == 2
    data = health.to_json(result)
    assert (data["live"], data["dead"], data["hung"], data["unknown"]) == (1, 1, 1, 0)
    assert data["sockets"] == [
        {"path": "/t/0", "state": "live", "sessions": 2, "reason": "", "pid": None, "uid": 0},
        {"path": "/t/1", "state": "dead", "sessions": None, "reason": "", "pid": None, "uid": 0},
        {"path": "/t/2", "state": "hung", "sessions": None, "reason": "", "pid": None, "uid": 0},
    ]


def test_psutil_stays_off_the_sweep_path_and_out_of_health_imports() -> None:
    code = (
        "import sys, forge_tmux.cli.common, forge_tmux.config, forge_tmux.probe, "
        "forge_tmux.sweep, forge_tmux.health, forge_tmux.healthstate, forge_tmux.orphans, "
        "forge_tmux.cli._health; print('psutil' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
