"""Pure parts of the spawn harness and the scope door: exact argument vectors and decisions."""

from __future__ import annotations

import pytest

from forge_tmux import scope
from forge_tmux.scope import ScopeMode, ScopePlan
from forge_tmux.spawn import (
    Outcome,
    SpawnResult,
    exact,
    new_session_args,
    pane_tail,
    spawn_message,
)

CREATE = ("new-session", "-d", "-s", "build", "-P", "-F", "#{pid} #{session_id}")


def test_new_session_without_command_uses_tmux_default() -> None:
    assert new_session_args("build") == CREATE


def test_new_session_argv_is_passed_through_unchanged() -> None:
    assert new_session_args("build", ["python3", "-c", "x; y", "a b"]) == (
        *CREATE,
        "--",
        "python3",
        "-c",
        "x; y",
        "a b",
    )


def test_single_argument_is_not_handed_to_a_shell_as_text() -> None:
    # tmux would run a lone argument through `sh -c`; the constant script execs it as argv[0].
    assert new_session_args("build", ["echo hi; touch /tmp/x"]) == (
        *CREATE,
        "--",
        "/bin/sh",
        "-c",
        'exec "$@"',
        "sh",
        "echo hi; touch /tmp/x",
    )


def test_exact_target() -> None:
    assert exact("build") == "=build"


@pytest.mark.parametrize(
    ("cleaned", "attempts", "expected"),
    [
        (0, 1, "spawned build on spawn-build"),
        (1, 1, "spawned build on spawn-build after cleaning 1 stale socket"),
        (2, 1, "spawned build on spawn-build after cleaning 2 stale sockets"),
        (1, 2, "spawned build on spawn-build after cleaning 1 stale socket (attempt 2)"),
    ],
)
def test_spawn_message(cleaned: int, attempts: int, expected: str) -> None:
    assert spawn_message("build", "spawn-build", cleaned, attempts) == expected


def test_pane_tail_keeps_the_last_non_blank_lines() -> None:
    pane = "\n".join(f"line {i}  " for i in range(15)) + "\n\n\n"
    assert pane_tail(pane, 3) == "line 12\nline 13\nline 14"
    assert pane_tail("\n \n") == ""


def test_json_has_exactly_the_contract_keys() -> None:
    result = SpawnResult(Outcome.SPAWNED, "b", "spawn-b", "/t/spawn-b", 1, 2, "m", None, 42)
    assert result.to_json() == {
        "ok": True,
        "session": "b",
        "socket_name": "spawn-b",
        "socket_path": "/t/spawn-b",
        "cleaned": 1,
        "attempts": 2,
        "message": "m",
        "error": None,
    }
    failed = SpawnResult(Outcome.NOT_READY, "b", "spawn-b", "/t/spawn-b", 0, 1, "m", "e")
    assert failed.ok is False


# ---- scope ---------------------------------------------------------------------------------

SERVICE_CGROUP = "0::/system.slice/forge-bot.service\n"
USER_SERVICE_CGROUP = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/bot.service\n"
SHELL_CGROUP = "0::/user.slice/user-1000.slice/session-3.scope\n"


@pytest.mark.parametrize(
    ("environ", "cgroup", "expected"),
    [
        ({}, SHELL_CGROUP, False),
        ({}, "0::/\n", False),
        ({"INVOCATION_ID": "abc"}, SHELL_CGROUP, True),
        ({"INVOCATION_ID": ""}, SHELL_CGROUP, False),
        ({}, SERVICE_CGROUP, True),
        ({}, USER_SERVICE_CGROUP, True),
        # The user manager itself is not a service of ours.
        ({}, "0::/user.slice/user-1000.slice/user@1000.service\n", False),
        # cgroup v1: the name=systemd hierarchy says it, the others do not.
        ({}, "4:memory:/x.service\n1:name=systemd:/system.slice/bot.service\n", True),
        ({}, "4:memory:/system.slice/bot.service\n1:name=systemd:/\n", False),
    ],
)
def test_under_systemd(environ: dict[str, str], cgroup: str, expected: bool) -> None:
    assert scope.under_systemd(environ, cgroup) is expected


def make_plan(
    environ: dict[str, str], euid: int = 1000, files: tuple[str, ...] = (), run: str | None = "R"
) -> ScopePlan:
    return scope.plan(
        "spawn-build",
        environ=environ,
        euid=euid,
        cgroup_text=SHELL_CGROUP,
        systemd_run=run,
        exists=lambda path: path in files,
        token="abc123",
    )


def test_plan_outside_systemd_is_a_plain_child() -> None:
    assert make_plan({}) == ScopePlan(ScopeMode.NONE, "not running under systemd")


def test_plan_user_scope_exact_argv() -> None:
    got = make_plan(
        {"INVOCATION_ID": "x", "XDG_RUNTIME_DIR": "/run/user/1000"},
        files=("/run/user/1000/bus",),
    )
    assert got.mode is ScopeMode.USER
    assert got.wrapper == (
        "R",
        "--user",
        "--scope",
        "--quiet",
        "--collect",
        "--unit=forge-tmux-spawn-build-abc123",
        "--description=forge-tmux tmux server spawn-build",
        "--",
    )
    assert dict(got.extra_env) == {}
    assert got.environ() is None


def test_plan_user_scope_supplies_the_runtime_dir_a_system_service_lacks() -> None:
    got = make_plan({"INVOCATION_ID": "x"}, files=("/run/user/1000/bus",))
    assert got.mode is ScopeMode.USER
    assert dict(got.extra_env) == {"XDG_RUNTIME_DIR": "/run/user/1000"}
    environ = got.environ()
    assert environ is not None
    assert environ["XDG_RUNTIME_DIR"] == "/run/user/1000"


def test_plan_root_without_user_manager_uses_the_system_scope() -> None:
    got = make_plan({"INVOCATION_ID": "x"}, euid=0, files=("/run/systemd/system",))
    assert got.mode is ScopeMode.SYSTEM
    assert got.wrapper[:4] == ("R", "--scope", "--quiet", "--collect")
    assert "--user" not in got.wrapper


@pytest.mark.parametrize(
    ("environ", "euid", "files", "run", "reason"),
    [
        ({"INVOCATION_ID": "x"}, 1000, ("/run/user/1000/bus",), None, "systemd-run not found"),
        ({"INVOCATION_ID": "x"}, 1000, (), "R", "no user manager bus (/run/user/1000/bus)"),
        # A non-root user cannot use the system manager's scopes.
        ({"INVOCATION_ID": "x"}, 1000, ("/run/systemd/system",), "R", "no user manager bus"),
        ({"INVOCATION_ID": "x"}, 0, (), "R", "no user manager bus (/run/user/0/bus)"),
    ],
)
def test_plan_falls_back(
    environ: dict[str, str], euid: int, files: tuple[str, ...], run: str | None, reason: str
) -> None:
    got = make_plan(environ, euid, files, run)
    assert got.mode is ScopeMode.FALLBACK
    assert got.wrapper == ()
    assert got.reason.startswith(reason)


@pytest.mark.parametrize(
    ("code", "out", "err", "expected"),
    [
        (1, "", "Failed to connect to bus: No such file or directory\n", True),
        (1, "", "Failed to start transient scope unit: Access denied\n", True),
        (0, "1 $0\n", "", False),
        (1, "", "no server running on /tmp/tmux-0/x\n", False),
        (None, "", "", False),
    ],
)
def test_scope_failed(code: int | None, out: str, err: str, expected: bool) -> None:
    assert scope.scope_failed(code, out, err) is expected
