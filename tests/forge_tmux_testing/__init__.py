"""The test worlds of forge-tmux: a pytest plugin (`plugin.py`, loaded by tests/conftest.py) and
the helpers tests import from here, never from a conftest.

- `tmux_world`: a private tmux world (a short `TMUX_TMPDIR`, its servers killed by pid), stale
  sockets made the real way, a tmux lock held by another process.
- `cli`: the command line through its real entry point (`python -m forge_tmux`).
- `processes`: waiting, pid liveness, running a function as another user.
- `telegram` and `fake_bot_api`: the fake Bot API on 127.0.0.1 that the real
  python-telegram-bot talks to, and the settings that point forge-tmux at it.
- `systemd_user`: a throw-away user with a real `systemd --user` manager.
- `hostguard`: the watchdog that undoes a session's worlds however the session ends.
- `no_netlink`, `private_mounts`, `fake_tmux`: the CLI without sock_diag, in a private mount
  namespace, and with a tmux that lies.
"""

from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[2]
"""The source tree under test (docs, units, install.sh, pyproject.toml)."""
