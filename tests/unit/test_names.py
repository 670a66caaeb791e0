"""Session and socket names (pure functions): exact values, the length limit, no collisions."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from forge_tmux.config import Config, HealthConfig, SpawnConfig
from forge_tmux.errors import UsageError
from forge_tmux.spawn import (
    check_socket_name,
    make_request,
    name_budget,
    request_for,
    safe_name,
)

SOCKDIR = "/tmp/tmux-0"  # budget 89: 107 - len("/tmp/tmux-0/spawn-")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("build", "build"),
        ("a_b", "a_b"),
        ("a-b", "a-b"),
        ("Build_42-x", "Build_42-x"),
        ("a.b", "a-b-2e7336dc"),
        ("my build", "my-build-0f3d37eb"),
        ("x:y", "x-y-1274e286"),
        ("a/b", "a-b-c14cddc0"),
        ("..", "---5ec1f7e7"),
        ("naïve", "na-ve-f86fd89d"),
        ("ü", "--607474ca"),
        ("$(touch /tmp/x)", "--touch--tmp-x--851205e5"),
        # Already ends like a hash suffix: hashed again, so no typed name equals a hashed one.
        ("build-0123abcd", "build-0123abcd-ccaea289"),
    ],
)
def test_safe_name_exact(given: str, expected: str) -> None:
    assert safe_name(given, name_budget(SOCKDIR)) == expected


def test_hash_suffix_is_the_sha256_of_the_original() -> None:
    digest = hashlib.sha256(b"my build").hexdigest()[:8]
    assert safe_name("my build", 89).endswith("-" + digest)


def test_budget_is_what_fits_in_sun_path() -> None:
    assert name_budget(SOCKDIR) == 89
    longest = safe_name("x" * 300, 89)
    assert len(os.path.join(SOCKDIR, "spawn-" + longest)) == 107
    assert longest == "x" * 80 + "-0d4e2ca9"


def test_shortening_only_when_needed() -> None:
    assert safe_name("x" * 89, 89) == "x" * 89
    assert safe_name("x" * 90, 89) == "x" * 80 + "-" + hashlib.sha256(b"x" * 90).hexdigest()[:8]


def test_non_utf8_bytes_from_argv_are_hashed_not_crashing() -> None:
    name = os.fsdecode(b"caf\xe9")  # a Latin-1 name as it arrives in sys.argv
    assert safe_name(name, 89) == "caf--" + hashlib.sha256(b"caf\xe9").hexdigest()[:8]


def test_distinct_names_never_share_a_socket() -> None:
    names = ["a.b", "a_b", "a-b", "a:b", "a b", "a/b", "a..b", "a--b", "a-b-2e7336dc", "x" * 300]
    names += ["x" * 299 + "y", "ü", "ö", "-", "--"]
    safe = {safe_name(n, 89) for n in names}
    assert len(safe) == len(names)


@pytest.mark.parametrize("empty", ["", " ", "\t\n"])
def test_empty_name_is_a_usage_error(empty: str) -> None:
    with pytest.raises(UsageError, match="must not be empty"):
        safe_name(empty, 89)


def test_socket_dir_too_long_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="too long"):
        safe_name("build", 9)


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ("", "must not be empty"),
        ("default", "shared default socket"),
        ("homebase", "protected"),
        ("a/b", "only letters"),
        ("a.b", "only letters"),
        ("x" * 100, "longer than 107 bytes"),
    ],
)
def test_bad_socket_names(label: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        check_socket_name(label, SOCKDIR, ("homebase",))


def test_socket_name_override_is_kept_verbatim() -> None:
    assert check_socket_name("fleet_1", SOCKDIR, ("homebase",)) == "/tmp/tmux-0/fleet_1"


def test_make_request_exact() -> None:
    request = make_request(
        "a.b", ["sh", "-c", "x"], wait_for="^>", ready_timeout=5, socket_dir=SOCKDIR
    )
    assert (request.name, request.session, request.socket_name, request.socket_path) == (
        "a.b",
        "a-b-2e7336dc",
        "spawn-a-b-2e7336dc",
        "/tmp/tmux-0/spawn-a-b-2e7336dc",
    )
    assert (request.command, request.wait_for, request.ready_timeout) == (
        ("sh", "-c", "x"),
        "^>",
        5,
    )


def test_make_request_refuses_a_protected_derived_socket() -> None:
    with pytest.raises(UsageError, match="protected"):
        make_request("fleet", socket_dir=SOCKDIR, protected=("spawn-fleet",))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"wait_for": "("}, "not a valid regular expression"),
        ({"ready_timeout": 0}, "positive"),
        ({"ready_timeout": float("nan")}, "positive"),
    ],
)
def test_make_request_bad_input(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        make_request("x", socket_dir=SOCKDIR, **kwargs)


def test_request_for_takes_protection_and_timeouts_from_the_config() -> None:
    cfg = Config(
        protected_sockets=("fleet",),
        spawn=SpawnConfig(ready_timeout=7.0),
        health=HealthConfig(timeout=0.5),
    )
    request = request_for(cfg, "build", ["x"], wait_for="y", socket_dir=SOCKDIR)
    assert (request.ready_timeout, request.query_timeout) == (7.0, 0.5)
    assert request_for(cfg, "b", ready_timeout=3, socket_dir=SOCKDIR).ready_timeout == 3
    with pytest.raises(UsageError, match="protected"):
        request_for(cfg, "b", socket_name="fleet", socket_dir=SOCKDIR)
    # The default protected name is replaced by the config's list, not added to.
    assert request_for(cfg, "b", socket_name="homebase", socket_dir=SOCKDIR).socket_name == (
        "homebase"
    )
