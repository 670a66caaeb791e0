"""The root of the test suite: loads the test worlds (forge_tmux_testing/plugin.py) and marks
every test with its tier, the folder it lives in.

- `unit`: pure logic, pyfakefs at most; no process, no socket, no server.
- `integration`: real tmux servers, the real CLI as a subprocess, the real python-telegram-bot
  against the fake Bot API on 127.0.0.1.
- `e2e`: a real `systemd --user` manager of a throw-away user, install.sh, ansible, packaging.

`pytest -m unit` runs one tier; `pytest -m "not e2e"` leaves the slowest out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Before the plugin is imported: its helpers' plain asserts are rewritten like the tests' own.
pytest.register_assert_rewrite("forge_tmux_testing")

pytest_plugins = ["forge_tmux_testing.plugin"]

TIERS = ("unit", "integration", "e2e")
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = item.path.relative_to(HERE).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(
                f"{item.nodeid}: a test lives in tests/unit, integration or e2e"
            )
        item.add_marker(tier)
