"""Run the real CLI in a process whose kernel refuses AF_NETLINK sockets, as a systemd unit with
`RestrictAddressFamilies=` (no AF_NETLINK) or a container's seccomp profile does.

The refusal is a real seccomp filter (libseccomp through ctypes, the mechanism systemd uses):
socket(AF_NETLINK, ...) fails with EAFNOSUPPORT; everything else is allowed.
"""

from __future__ import annotations

import ctypes.util
import subprocess
import sys

from forge_tmux_testing.cli import CliResult

_PREAMBLE = """
import ctypes, errno, runpy, socket, sys

class Arg(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]

lib = ctypes.CDLL(LIBRARY, use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add_array.argtypes = [
    ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Arg)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
ALLOW, CMP_EQ = 0x7FFF0000, 4
ctx = lib.seccomp_init(ALLOW)
deny = 0x00050000 | errno.EAFNOSUPPORT  # SCMP_ACT_ERRNO(EAFNOSUPPORT)
nr = lib.seccomp_syscall_resolve_name(b"socket")
rule = (Arg * 1)(Arg(0, CMP_EQ, socket.AF_NETLINK, 0))
if not ctx or lib.seccomp_rule_add_array(ctx, deny, nr, 1, rule) or lib.seccomp_load(ctx):
    sys.exit(97)  # could not install the filter: the caller skips
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)
    sys.exit(98)  # the filter did not take
except OSError as exc:
    assert exc.errno == errno.EAFNOSUPPORT
sys.argv[0] = "forge-tmux"
runpy.run_module("forge_tmux", run_name="__main__", alter_sys=True)
"""

LIBRARY = ctypes.util.find_library("seccomp")


def run_without_netlink(*args: str, env: dict[str, str]) -> CliResult:
    """`forge-tmux ARGS` with AF_NETLINK denied; pytest.skip when the filter cannot be had."""
    import pytest  # noqa: PLC0415

    if LIBRARY is None:
        pytest.skip("libseccomp is not installed")
    code = f"LIBRARY = {LIBRARY!r}\n{_PREAMBLE}"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )
    if proc.returncode in (97, 98):
        pytest.skip(f"cannot deny AF_NETLINK here (seccomp, exit {proc.returncode})")
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
