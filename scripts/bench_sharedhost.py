#!/usr/bin/env python3
"""Benchmark a user's sweep on a shared host: root runs tmux servers with clients attached.

One stale socket, removed by a non-root `forge-tmux sweep` (whole process, as uid 65534 through
`setpriv`), while root's own tmux servers run and root's control-mode clients are attached to
root's own sockets (by -L and by -S). Before 0.2 every such sweep held the retired lock file for
the whole --timeout (about 2,050 ms); target < 100 ms. For scale, the same sweep with no root
tmux running of ours, alternated with it, and `python -c "import typer"`.

The sweep needs a world-readable interpreter: the package is installed into the end-to-end
tests' venv under /var/tmp (tests/forge_tmux_testing/systemd_user.py, built once per source tree).

Run as root: .venv/bin/python scripts/bench_sharedhost.py [--runs 9]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UID = 65534
TMUX = shutil.which("tmux") or "tmux"


def as_user(argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", *argv]


def one_stale_socket(root: str, n: int) -> str:
    directory = os.path.join(root, f"run{n}", f"tmux-{UID}")
    os.makedirs(directory, mode=0o700)
    os.chmod(os.path.dirname(directory), 0o755)  # noqa: S103 - uid 65534 must reach it
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(directory, "default"))
    s.close()
    for path in (os.path.join(directory, "default"), directory):
        os.chown(path, UID, UID)
    return directory


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd="/", check=False, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited {proc.returncode}: {proc.stderr}")
    if "held retired lock" in proc.stderr:
        print(f"  (a wait: {proc.stderr.strip().splitlines()[-1]})")
    return elapsed


class RootTmux:
    """Root's servers (-L r0..) in a private TMUX_TMPDIR and attached control-mode clients."""

    def __init__(self, servers: int) -> None:
        self.tmpdir = tempfile.mkdtemp(prefix="ftbroot", dir="/tmp")
        self.env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        self.env["TMUX_TMPDIR"] = self.tmpdir
        self.pids: list[int] = []
        self.clients: list[subprocess.Popen[bytes]] = []
        for i in range(servers):
            # Named like the user's stale socket too: root's directory is not the user's.
            label = "default" if i == 0 else f"r{i}"
            out = subprocess.run(
                [TMUX, "-f", "/dev/null", "-L", label, "new-session", "-d", "-P", "-F", "#{pid}"],
                env=self.env,
                capture_output=True,
                text=True,
                check=True,
                timeout=20,
            ).stdout
            self.pids.append(int(out.split()[0]))
            by_path = ["-S", os.path.join(self.tmpdir, "tmux-0", label)]
            for how in (["-L", label], by_path):
                client = subprocess.Popen(
                    [TMUX, *how, "-C", "attach"],
                    env=self.env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                self.clients.append(client)
        time.sleep(0.5)  # let the clients attach

    def stop(self) -> None:
        for client in self.clients:
            client.kill()
            client.wait()
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--servers", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (it starts root's tmux and sweeps as another uid)")
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from forge_tmux_testing.systemd_user import e2e_venv  # noqa: PLC0415 - world-readable venv

    venv = e2e_venv()
    forge = [str(venv / "bin" / "forge-tmux"), "--verbose", "sweep", "--timeout", "2"]
    baseline = as_user([str(venv / "bin" / "python"), "-c", "import typer"])
    root = tempfile.mkdtemp(prefix="ftbsh", dir="/dev/shm")
    os.chmod(root, 0o755)  # noqa: S103 - uid 65534 must reach it
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": root, "LANG": "C.UTF-8"}
    env["XDG_CONFIG_HOME"] = os.path.join(root, "no-config")
    quiet, busy, typer_s = [], [], []
    try:
        count = 0
        for attempt in range(args.runs + 1):  # the first round is a warm-up
            root_tmux = RootTmux(args.servers)
            try:
                timed(baseline, env)  # let the new servers settle before the figure
                d = one_stale_socket(root, count)
                busy_s = timed(as_user([*forge, "--dir", d]), env)
                if os.listdir(d):
                    raise SystemExit(f"sweep left {os.listdir(d)} in {d}")
            finally:
                root_tmux.stop()
            count += 1
            d = one_stale_socket(root, count)
            quiet_s = timed(as_user([*forge, "--dir", d]), env)
            count += 1
            base_s = timed(baseline, env)
            if attempt:
                busy.append(busy_s)
                quiet.append(quiet_s)
                typer_s.append(base_s)
    finally:
        shutil.rmtree(root)
    b, q, t = (statistics.median(x) * 1000 for x in (busy, quiet, typer_s))
    print(f"medians of {args.runs}, uid {UID} sweeping one stale socket (whole process):")
    print(
        f"  with {args.servers} root tmux servers and {2 * args.servers} root clients attached: "
        f"{b:.0f} ms (target < 100 ms)"
    )
    print(f"  with no root tmux of ours: {q:.0f} ms;  python -c 'import typer': {t:.0f} ms")


if __name__ == "__main__":
    main()
