"""Rendering the units: exact expectations on the lines that matter; `systemd-analyze verify`
with nothing on stderr (user and system mode); the system sweep's `systemd-analyze security`."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from forge_tmux import systemd
from forge_tmux.config import Config, TelegramConfig
from forge_tmux.errors import UsageError
from forge_tmux.systemd_units import (
    BOOT_SERVICE,
    BOT_SERVICE,
    FAILURE_SERVICE,
    POST_BOOT_SERVICE,
    SAVE_SERVICE,
    SWEEP_SERVICE,
    SWEEP_TIMER,
    TMPFILES,
    Identity,
    Mode,
    RenderOptions,
    _quote,
    options,
    render,
)
from forge_tmux_testing.cli import CliResult, run_cli

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
EXE = os.path.join(os.path.dirname(sys.executable), "forge-tmux")
ME = Identity("alice", "staff", 1234, "/home/alice")


def files(mode: Mode, **kw: Any) -> dict[str, str]:
    opts = RenderOptions(mode=mode, exec_start=(EXE,), identity=ME, **kw)
    return {f.name: f.text for f in render(opts)}


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def value(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in lines(text) if line.split("=", 1)[0] == key]


@pytest.mark.parametrize("mode", list(Mode))
def test_sweep_service_essentials(mode: Mode) -> None:
    sweep = files(mode)[SWEEP_SERVICE]
    assert value(sweep, "Type") == ["oneshot"]
    assert value(sweep, "ExecStart") == [f"{EXE} sweep --notify"]
    assert value(sweep, "TimeoutStartSec") == ["2min"]
    assert value(sweep, "PrivateTmp") == ["no"]
    # The reason is said right above it, so nobody "hardens" it later.
    above = sweep.splitlines()[sweep.splitlines().index("PrivateTmp=no") - 1]
    assert above.startswith("#") and "/tmp" in above
    assert value(sweep, "Before") == [POST_BOOT_SERVICE]
    target = "default.target" if mode is Mode.USER else "multi-user.target"
    assert value(sweep, "WantedBy") == [f"{target} {POST_BOOT_SERVICE}"]
    assert "Environment=PYTHONUNBUFFERED=1" in lines(sweep)
    # AF_NETLINK: the sweep's sock_diag check of bound socket files.
    assert value(sweep, "RestrictAddressFamilies") == ["AF_UNIX AF_NETLINK"]
    assert value(sweep, "PrivateNetwork") == []  # sock_diag sees only its own namespace
    assert "RemainAfterExit" not in sweep  # it would make the timer fire only once
    assert value(sweep, "ReadWritePaths")[0].startswith("-/tmp/tmux-1234 ")


def test_user_mode_has_no_system_targets_and_no_user_line() -> None:
    for name, text in files(Mode.USER, with_post_boot=True).items():
        for forbidden in ("multi-user.target", "network.target", "network-online.target"):
            assert forbidden not in text, (name, forbidden)
        for key in ("User", "Group", "CapabilityBoundingSet", "PrivateUsers", "DynamicUser"):
            assert value(text, key) == [], (name, key)


def test_system_mode_runs_as_the_user_with_the_uid_rendered_in() -> None:
    rendered = files(Mode.SYSTEM)
    for name in (SWEEP_SERVICE, BOOT_SERVICE, BOT_SERVICE):
        assert value(rendered[name], "User") == ["alice"], name
        assert value(rendered[name], "Group") == ["staff"], name
    assert "/tmp/tmux-1234" in rendered[SWEEP_SERVICE]
    assert "%U" not in "".join(rendered.values())  # %U is 0 in a system unit
    assert value(rendered[SWEEP_SERVICE], "CapabilityBoundingSet") == [""]


def test_network_ordering_only_where_telegram_is_used() -> None:
    system = files(Mode.SYSTEM)
    assert "network" not in system[SWEEP_SERVICE].split("[Service]")[0]
    assert value(system[SWEEP_SERVICE], "IPAddressDeny") == ["any"]
    for name in (BOOT_SERVICE, BOT_SERVICE):
        assert value(system[name], "After").count("network-online.target") == 1, name
        assert value(system[name], "Wants").count("network-online.target") == 1, name
    assert value(system[BOOT_SERVICE], "RestrictAddressFamilies") == [
        "AF_UNIX AF_NETLINK AF_INET AF_INET6"
    ]
    with_telegram = files(Mode.SYSTEM, telegram=True)[SWEEP_SERVICE]
    assert value(with_telegram, "RestrictAddressFamilies") == [
        "AF_UNIX AF_NETLINK AF_INET AF_INET6"
    ]
    assert value(with_telegram, "IPAddressDeny") == []


def test_timer_per_mode() -> None:
    user = files(Mode.USER)[SWEEP_TIMER]
    system = files(Mode.SYSTEM)[SWEEP_TIMER]
    assert value(user, "OnUnitActiveSec") == value(system, "OnUnitActiveSec") == ["10min"]
    assert value(user, "OnStartupSec") == ["1min"] and value(user, "OnBootSec") == []
    assert value(system, "OnBootSec") == ["1min"] and value(system, "OnStartupSec") == []
    assert value(user, "WantedBy") == ["timers.target"]
    assert value(user, "Persistent") == []  # only meaningful for OnCalendar=


def test_boot_bot_and_post_boot_units() -> None:
    rendered = files(Mode.USER, with_post_boot=True)
    boot = rendered[BOOT_SERVICE]
    assert value(boot, "ExecStart") == [f"{EXE} boot"]
    assert value(boot, "After") == [f"{SWEEP_SERVICE} {POST_BOOT_SERVICE}"]
    assert value(boot, "TimeoutStartSec") == ["3min"]
    bot = rendered[BOT_SERVICE]
    assert value(bot, "Restart") == ["on-failure"]
    assert value(bot, "RestartPreventExitStatus") == ["2"]
    assert value(bot, "KillMode") == ["process"]
    # Sessions inherit a sandbox: the units that spawn them carry none.
    for name in (BOT_SERVICE, POST_BOOT_SERVICE):
        for key in ("SystemCallFilter", "NoNewPrivileges", "ProtectSystem", "RestrictNamespaces"):
            assert value(rendered[name], key) == [], (name, key)
    post = rendered[POST_BOOT_SERVICE]
    assert value(post, "ExecStart") == [f"{EXE} post-boot"]
    assert value(post, "RemainAfterExit") == ["yes"]
    assert POST_BOOT_SERVICE not in files(Mode.USER)


def test_credential_only_with_a_token_file() -> None:
    assert "LoadCredential" not in "".join(files(Mode.USER).values())
    rendered = files(Mode.USER, token_file="/etc/forge/token", telegram=True)
    for name in (BOOT_SERVICE, BOT_SERVICE, SWEEP_SERVICE):
        assert value(rendered[name], "LoadCredential") == ["telegram-token:/etc/forge/token"]


def test_tmpfiles_snippet_excludes_tmux_dirs() -> None:
    snippet = files(Mode.USER, socket_dirs=("/srv/sockets",))[TMPFILES]
    assert lines(snippet) == ["x /tmp/tmux-*", "x /srv/sockets"]


def test_exec_words_are_escaped() -> None:
    assert _quote("/opt/forge tmux/bin/forge-tmux") == '"/opt/forge tmux/bin/forge-tmux"'
    assert _quote("/opt/100%/x") == "/opt/100%%/x"
    assert _quote("/opt/$HOME/x") == "/opt/$$HOME/x"


def test_config_path_is_passed_on() -> None:
    opts = RenderOptions(Mode.USER, (EXE,), ME, config_path="/etc/forge/config.toml")
    sweep = {f.name: f.text for f in render(opts)}[SWEEP_SERVICE]
    assert value(sweep, "ExecStart") == [f"{EXE} --config /etc/forge/config.toml sweep --notify"]


def test_options_reject_bad_input() -> None:
    with pytest.raises(UsageError, match="absolute"):
        options(Config(), Mode.USER, exec_path="bin/forge-tmux")
    with pytest.raises(UsageError, match="no such user"):
        options(Config(), Mode.SYSTEM, user="no-such-user-forge")
    with pytest.raises(UsageError, match="token_file"):
        options(Config(telegram=TelegramConfig(token_file="rel/token")), Mode.USER)


def render_cli(tmp_path: Path, *args: str) -> CliResult:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    env.pop("TMUX_TMPDIR", None)
    return run_cli("units", "render", *args, env=env)


def test_cli_render_writes_the_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = render_cli(tmp_path, "--mode", "system", "--out", str(out), "--with-post-boot")
    assert result.code == 0, result.err
    assert sorted(os.listdir(out)) == sorted(
        [
            SWEEP_SERVICE,
            SWEEP_TIMER,
            BOOT_SERVICE,
            SAVE_SERVICE,
            BOT_SERVICE,
            POST_BOOT_SERVICE,
            FAILURE_SERVICE,
            TMPFILES,
        ]
    )
    # Default ExecStart: the running forge-tmux, absolute.
    exec_start = value((out / SWEEP_SERVICE).read_text(), "ExecStart")[0]
    assert os.path.isabs(exec_start.split()[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "bogus", "--out", "X"], "--mode"),
        (["--out", "X", "--exec", "relative/forge-tmux"], "absolute"),
        (["--mode", "user", "--run-as", "root", "--out", "X"], "--run-as is for --mode system"),
        (["--mode", "user", "--user", "root", "--out", "X"], "--run-as is for --mode system"),
        (["--mode", "system", "--run-as", "no-such-user-ftx", "--out", "X"], "no such user"),
        (["--run-as", "root", "--user", "root", "--out", "X"], "old name of --run-as"),
        (["--out", "/dev/null/x"], "cannot write into /dev/null/x"),
        (["--out", "X", "--textfile-dir", "relative"], "--textfile-dir must be an absolute"),
        (["--out", "X", "--textfile-dir", "/a b"], "--textfile-dir must be an absolute"),
        (["--out", "X", "--metrics-interval", "5"], "--metrics-interval must be 10 to 3600"),
    ],
)
def test_cli_render_bad_input_is_one_line_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = render_cli(tmp_path, *[a.replace("X", str(tmp_path / "o")) for a in args])
    assert result.code == 2
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err


def rendered_dir(tmp_path: Path, mode: str) -> Path:
    out = tmp_path / mode
    result = render_cli(
        tmp_path,
        "--mode",
        mode,
        "--out",
        str(out),
        "--exec",
        EXE,
        "--with-post-boot",
        "--with-health-metrics",
        "--textfile-dir",
        str(tmp_path / "textfile"),
    )
    assert result.code == 0, result.err
    return out


@needs_analyze
@pytest.mark.parametrize("mode", ["user", "system"])
def test_systemd_analyze_verify_is_silent(tmp_path: Path, mode: str) -> None:
    assert os.access(EXE, os.X_OK), "verify needs the ExecStart binary to exist"
    out = rendered_dir(tmp_path, mode)
    units = sorted(str(p) for p in out.iterdir() if p.suffix in (".service", ".timer"))
    env = dict(os.environ)
    args = ["verify", "--man=no", *units]
    if mode == "user":
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        args.insert(0, "--user")
    result = systemd.analyze(args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@needs_analyze
def test_systemd_analyze_security_score_of_the_system_sweep(tmp_path: Path) -> None:
    out = rendered_dir(tmp_path, "system")
    result = systemd.analyze(["security", "--offline=true", "--man=no", str(out / SWEEP_SERVICE)])
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    score = float(match.group(1))
    print(f"systemd-analyze security {SWEEP_SERVICE} (system mode): {score}")
    assert score <= 2.0


def test_sweep_unit_keeps_proc_readable_in_system_mode() -> None:
    """The sweep reads /proc/locks and the fds of the user's tmux clients before it releases a
    removed lock file (forge_tmux/locks.py); ProcSubset=pid hides the first and a private user
    namespace the second, which would blind that check."""
    unit = files(Mode.SYSTEM)[SWEEP_SERVICE]
    assert value(unit, "ProcSubset") == []
    assert value(unit, "ProtectProc") == []
    assert value(unit, "PrivateUsers") == []
    assert value(unit, "RestrictAddressFamilies") == ["AF_UNIX AF_NETLINK"]
