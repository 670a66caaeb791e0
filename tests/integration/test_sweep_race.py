"""Race: real `tmux new-session` starting servers on stale paths while sweeps run.

A check-then-unlink janitor orphans servers here (their socket deleted under them, the next
client then starts a second server). With tmux's lock protocol every server must end reachable
through its own socket, and each socket must be owned by exactly the server that answers on it.
"""

from __future__ import annotations

import subprocess
import threading

from forge_tmux import sweep as core
from forge_tmux.probe import SocketState, probe_path
from forge_tmux_testing.hostguard import tmux_processes
from forge_tmux_testing.tmux_world import TmuxEnv, make_stale_socket, needs_tmux

pytestmark = needs_tmux

ROUNDS = 25
SOCKETS_PER_ROUND = 6


def test_sweeps_racing_tmux_new_session(tmux_env: TmuxEnv) -> None:
    assert tmux_env.env["TMUX_TMPDIR"] == tmux_env.root
    errors: list[str] = []
    for rnd in range(ROUNDS):
        names = [f"r{rnd}s{i}" for i in range(SOCKETS_PER_ROUND)]
        for name in names:
            make_stale_socket(tmux_env.path(name))

        stop = threading.Event()

        def sweeper(stop: threading.Event = stop) -> None:
            while not stop.is_set():
                core.sweep([tmux_env.sockdir], timeout=1)

        threads = [threading.Thread(target=sweeper) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            clients = [
                subprocess.Popen(
                    ["tmux", "-f", "/dev/null", "-L", name, "new-session", "-d", "sleep 1000"],
                    env=tmux_env.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for name in names
            ]
            for client in clients:
                _, err = client.communicate(timeout=30)
                if err.strip():
                    errors.append(err.strip())
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)

        for name in names:
            path = tmux_env.path(name)
            pid_out = tmux_env.tmux("-L", name, "display-message", "-p", "#{pid}")
            assert pid_out.returncode == 0, f"round {rnd}: {name}: {pid_out.stderr}"
            pid = int(pid_out.stdout)
            tmux_env.pids.append(pid)
            # The socket at the path is the one this very server listens on.
            probe = probe_path(path)
            assert probe.state is SocketState.LIVE, f"round {rnd}: {name}: {probe}"
            assert probe.peer_pid == pid, f"round {rnd}: {name}: socket owned by another pid"
        # Exactly one server per name: count tmux servers of this test by socket argument.
        assert _servers_for(tmux_env, names) == len(names), f"round {rnd}: extra servers"
    assert errors == []


def _servers_for(env: TmuxEnv, names: list[str]) -> int:
    return sum(
        1
        for _, comm, argv in tmux_processes(env.root)
        if comm == "tmux: server" and any(n.encode() in argv for n in names)
    )
