"""What the commands share that needs no Typer: the per-invocation state, socket directories,
duration options and JSON output. The commands the timers run (forge_tmux.cli._fast) get by
with this module alone."""

from __future__ import annotations

import os
import sys
from typing import Any

from forge_tmux.config import Config, check_seconds, load
from forge_tmux.errors import UsageError
from forge_tmux.paths import tmux_socket_dir


class State:
    """Per-invocation state from the global options; the config is read on first use."""

    def __init__(self, config_path: str | None, verbose: bool = False) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load(self.config_path)
        return self._config

    def start_logging(self) -> None:
        """Configure logging (stderr, journal priorities, token redaction). Every command does
        before its work, except that the sweep waits until it has something to log: importing
        `logging` is a measurable part of the sweep's cold start."""
        from forge_tmux import logs  # noqa: PLC0415

        logs.setup(self.verbose)


def socket_dirs(cfg: Config, given: list[str] | None) -> list[str]:
    """`--dir` replaces the defaults; the defaults are tmux's own directory plus the config's."""
    if given:
        if any(not d for d in given):
            raise UsageError("--dir must not be empty")
        return list(given)
    return [tmux_socket_dir(), *cfg.socket_dirs]


def positive(value: float, option: str) -> float:
    """A duration option, under the same rule as the config's duration keys."""
    problem = check_seconds(value)
    if problem:
        raise UsageError(f"{option} {problem}, not {value:g}")
    return value


def json_text(data: dict[str, Any]) -> str:
    """The one JSON rendering of a command's result (stdout, or a file with --output)."""
    import json  # noqa: PLC0415 - not on the path of a plain sweep

    return json.dumps(data, ensure_ascii=False)


def emit_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()


def is_root() -> bool:
    return os.geteuid() == 0
