"""The janitor's own record (janitorstate) and its metrics in `health --format prometheus`, after
real sweeps of real stale sockets, parsed by prometheus_client."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forge_tmux import __version__, janitorstate
from forge_tmux.janitorstate import JanitorState, Labelled
from forge_tmux_testing.cli import Cli
from forge_tmux_testing.tmux_world import TmuxEnv, fake_tmux_env, needs_tmux

NEW_METRICS = {
    "forge_tmux_sweep_last_success_timestamp_seconds",
    "forge_tmux_sweep_last_run_timestamp_seconds",
    "forge_tmux_sweep_removed_total",
    "forge_tmux_sweep_failures_total",
    "forge_tmux_spawn_retries_total",
    "forge_tmux_build_info",
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by (name, sorted labels); the parser raises on
    anything malformed."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def record(env: TmuxEnv) -> dict[str, object]:
    path = janitorstate.record_path(env.env["FORGE_TMUX_STATE_DIR"])
    assert os.path.exists(path)
    return janitorstate.load(path)._asdict()


@needs_tmux
def test_metrics_after_a_real_sweep_parse_and_count(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.stale("spawn-a")
    tmux_env.stale("spawn-b")
    before = time.time()
    assert cli("sweep").code == 0
    tmux_env.stale("spawn-c")
    assert cli("sweep").code == 0  # a second run (a restart in between): the counter goes on
    assert cli("sweep", "--dry-run").code == 0  # not the janitor's job done: not recorded
    result = cli("health", "--format", "prometheus")
    assert result.code == 0, result.err
    got = samples(result.out)
    names = {name for name, _ in got}
    assert names >= NEW_METRICS | {"forge_tmux_sockets", "forge_tmux_health_complete"}
    assert got[("forge_tmux_sweep_removed_total", ())] == 3
    assert got[("forge_tmux_sweep_failures_total", ())] == 0
    assert got[("forge_tmux_spawn_retries_total", ())] == 0
    assert got[("forge_tmux_build_info", (("version", __version__),))] == 1
    last_success = got[("forge_tmux_sweep_last_success_timestamp_seconds", ())]
    last_run = got[("forge_tmux_sweep_last_run_timestamp_seconds", ())]
    assert before <= last_success == last_run <= time.time()
    # The counters are typed as counters, the timestamps as gauges.
    kinds = {f.name: f.type for f in text_string_to_metric_families(result.out)}
    assert kinds["forge_tmux_sweep_removed"] == "counter"
    assert kinds["forge_tmux_sweep_last_success_timestamp_seconds"] == "gauge"


@needs_tmux
def test_a_failed_sweep_counts_and_keeps_the_last_success(tmux_env: TmuxEnv, cli: Cli) -> None:
    assert cli("sweep").code == 0
    first = record(tmux_env)
    unsafe = os.path.join(tmux_env.root, "unsafe")
    os.mkdir(unsafe, 0o700)
    os.chmod(unsafe, 0o777)  # group/other may write: refused, exit 1
    assert cli("sweep", "--dir", unsafe).code == 1
    after = record(tmux_env)
    assert after["failures_total"] == 1
    assert after["last_success"] == first["last_success"]
    assert isinstance(after["last_run"], float)
    assert isinstance(first["last_run"], float)
    assert after["last_run"] > first["last_run"]


@needs_tmux
def test_boot_records_its_sweep(tmux_env: TmuxEnv, cli: Cli) -> None:
    tmux_env.stale("spawn-old")
    assert cli("boot").code == 0
    assert record(tmux_env)["removed_total"] == 1


@needs_tmux
def test_spawn_records_its_preflight_sweep_and_its_retry(tmux_env: TmuxEnv, cli: Cli) -> None:

    tmux_env.stale("spawn-build")
    env, _count = fake_tmux_env(tmux_env, "lie-once")
    result = cli("spawn", "--json", "build", "--", "sleep", "100000", env=env)
    assert result.code == 0, result.err
    assert result.json()["attempts"] == 2
    got = record(tmux_env)
    assert got["spawn_retries_total"] == 1
    assert got["removed_total"] == 1  # the pre-flight sweep removed the stale socket
    assert got["last_success"] != 0


@needs_tmux
def test_all_users_labels_every_record_with_its_uid(tmux_env: TmuxEnv, cli: Cli) -> None:
    assert cli("sweep").code == 0
    result = cli("health", "--all-users", "--format", "prometheus")
    assert result.code == 0, result.err
    got = samples(result.out)
    uid = str(os.geteuid())
    assert got[("forge_tmux_sweep_removed_total", (("uid", uid),))] == 0
    assert got[("forge_tmux_sweep_last_success_timestamp_seconds", (("uid", uid),))] > 0
    assert ("forge_tmux_sweep_removed_total", ()) not in got


@needs_tmux
def test_an_unwritable_state_directory_does_not_fail_the_sweep(tmux_env: TmuxEnv, cli: Cli) -> None:
    blocker = os.path.join(tmux_env.root, "a-file")
    Path(blocker).write_text("")
    stale = tmux_env.stale("spawn-old")
    env = {**tmux_env.env, "FORGE_TMUX_STATE_DIR": os.path.join(blocker, "state")}
    result = cli("sweep", env=env)
    assert result.code == 0
    assert not os.path.exists(stale)
    (warning,) = [line for line in result.err.splitlines() if "cannot record" in line]
    assert warning.endswith("janitor.state: Not a directory")
    assert "Traceback" not in result.err


def test_record_that_is_missing_or_foreign_reads_as_zeros(tmp_path: Path) -> None:
    path = tmp_path / "janitor.state"
    assert janitorstate.load(str(path)) == JanitorState()
    path.write_text(
        "version 1\nremoved_total 3.5\nlast_run 5\nfailure_reported 1\nfailures_total -2\n"
    )
    # A field that does not parse (or is negative) is zero; an int time is fine.
    assert janitorstate.load(str(path)) == JanitorState(last_run=5.0, failure_reported=True)
    path.write_text("version 2\nremoved_total 3\n")
    assert janitorstate.load(str(path)) == JanitorState()
    path.write_bytes(b"\xff\xfe")
    assert janitorstate.load(str(path)) == JanitorState()
    # What is written reads back the same.
    state = JanitorState(1.5, 2.25, 3, 4, 5, True)
    path.write_text(state.to_text())
    assert janitorstate.load(str(path)) == state


def test_failure_is_reported_once_per_run_of_failures(tmp_path: Path) -> None:
    where = str(tmp_path)
    janitorstate.record_sweep(False, 0, directory=where)
    assert janitorstate.claim_failure_report(directory=where) is True
    janitorstate.record_sweep(False, 0, directory=where)
    assert janitorstate.claim_failure_report(directory=where) is False
    janitorstate.record_sweep(True, 0, directory=where)
    janitorstate.record_sweep(False, 0, directory=where)
    assert janitorstate.claim_failure_report(directory=where) is True


def _sweeps(where: str, n: int) -> None:
    for _ in range(n):
        janitorstate.record_sweep(True, 1, directory=where)


def test_concurrent_sweeps_lose_no_count(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_sweeps, args=(str(tmp_path), 40)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    loaded = janitorstate.load(janitorstate.record_path(str(tmp_path)))
    assert loaded.removed_total == 160
    assert sorted(os.listdir(tmp_path)) == ["janitor.state", "janitor.state.lock"]  # no temp left


def test_exposition_escapes_and_labels() -> None:
    lines = janitorstate.exposition(
        [Labelled(1000, JanitorState(removed_total=2)), Labelled(1001, JanitorState())],
        'odd"version\\',
    )
    got = samples("\n".join(lines) + "\n")
    assert got[("forge_tmux_build_info", (("version", 'odd"version\\'),))] == 1
    assert got[("forge_tmux_sweep_removed_total", (("uid", "1000"),))] == 2
    assert got[("forge_tmux_sweep_removed_total", (("uid", "1001"),))] == 0


@pytest.mark.parametrize("name", sorted(NEW_METRICS))
def test_names_follow_the_naming_guide(name: str) -> None:
    # Base units (seconds), `_total` only on counters, `_info` for the constant-1 build info.
    kinds = {m[0]: m[1] for m in janitorstate._METRICS}
    if name.endswith("_total"):
        assert kinds[name] == "counter"
    elif name != "forge_tmux_build_info":
        assert name.endswith("_timestamp_seconds")
        assert kinds[name] == "gauge"


def test_forget_removes_the_record_and_an_emptied_directory_only(tmp_path: Path) -> None:
    where = tmp_path / "state"
    janitorstate.record_sweep(True, 1, directory=str(where))
    (where / "outbox").mkdir()  # something else of forge-tmux's: stays, and so does the dir
    assert len(janitorstate.forget(str(where))) == 2
    assert os.listdir(where) == ["outbox"]
    (where / "outbox").rmdir()
    janitorstate.record_sweep(True, 1, directory=str(where))
    janitorstate.forget(str(where))
    assert not where.exists()
