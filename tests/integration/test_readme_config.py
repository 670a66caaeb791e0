"""The sample config of docs/configuration.md, copied verbatim: it loads, `doctor` finds nothing
wrong with it (with the token file it names created) and `units render` accepts it. The one rule
for paths (`~` expanded when the config is loaded) is what makes the same file work for all of
them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from forge_tmux.config import load
from forge_tmux.systemd_units import BOOT_SERVICE, SWEEP_SERVICE
from forge_tmux_testing import REPO
from forge_tmux_testing.cli import run_cli
from forge_tmux_testing.tmux_world import TmuxEnv

# From docs/configuration.md, "A sample config", verbatim.
SAMPLE = r"""socket_dirs = []                     # extra directories to sweep and probe
protected_sockets = ["homebase"]     # never removed, used, swept or killed; reported instead

[sweep]
timeout = 2                          # seconds, bound on the probes of one run
notify = "changes"                   # never | changes | always (Telegram, see below)

[spawn]
ready_timeout = 30
# default_profile = "shell"
# [spawn.profiles.shell]
# command = ["bash", "-l"]
# wait_for = '\$ $'

# [[boot.sessions]]                  # started by `forge-tmux post-boot`
# name = "agent"
# command = ["claude"]
# wait_for = ">"
# socket_name = "agent"              # default: spawn-<name>

[telegram]
# token_file = "~/.config/forge-tmux/telegram-token"   # mode 0600
# chat_id = 123456789
# api_url = "http://127.0.0.1:8081/bot"
timeout = 20                         # upper bound on time spent on Telegram per command

[bot]
allowed_user_ids = []                # empty: the bot serves nobody
allowed_chat_ids = []
max_command_age = 120                # seconds; older queued commands are ignored
spawns_per_minute = 5                # per user

[health]
timeout = 2                          # a live server slower than this to answer is "hung"
parallel = 32
"""

# What an operator does next: turn Telegram on by uncommenting the two lines.
WITH_TELEGRAM = SAMPLE.replace("# token_file", "token_file").replace("# chat_id", "chat_id")


def setup(env: TmuxEnv, text: str) -> tuple[dict[str, str], str, Path]:
    home = Path(env.root, "home")
    token = home / ".config/forge-tmux/telegram-token"
    token.parent.mkdir(parents=True)
    token.write_text("123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n")
    token.chmod(0o600)
    config = token.parent / "config.toml"
    config.write_text(text)
    return {**env.env, "HOME": str(home)}, str(config), token


def test_the_sample_is_still_what_the_docs_show() -> None:
    # When the page's sample changes, this copy must follow it (and the tests below check it).
    doc = REPO / "docs" / "configuration.md"
    assert f"```toml\n{SAMPLE}```\n" in doc.read_text()


def test_the_sample_with_telegram_passes_doctor_and_renders(tmux_env: TmuxEnv) -> None:
    env, config, token = setup(tmux_env, WITH_TELEGRAM)
    doctor = run_cli("--config", config, "doctor", "--json", env=env)
    checks = {c["name"]: c for c in doctor.json()["checks"]}
    assert checks["config"]["level"] == "ok", checks["config"]
    assert checks["telegram"]["level"] == "ok", checks["telegram"]
    assert f"token from {token}" in checks["telegram"]["detail"]
    # No user manager runs for root here, so the schedule is the one failure doctor may report.
    failed = [name for name, c in checks.items() if c["level"] == "fail"]
    assert failed in ([], ["units"]), doctor.out

    out = os.path.join(tmux_env.root, "units")
    rendered = run_cli("--config", config, "units", "render", "--out", out, env=env)
    assert rendered.code == 0, rendered.err
    boot = Path(out, BOOT_SERVICE).read_text()
    assert f"LoadCredential=telegram-token:{token}\n" in boot


def test_the_sample_verbatim_passes_doctor_and_renders(tmux_env: TmuxEnv) -> None:
    env, config, _ = setup(tmux_env, SAMPLE)
    assert load(config).telegram.token_file is None
    doctor = run_cli("--config", config, "doctor", "--json", env=env)
    checks = {c["name"]: c["level"] for c in doctor.json()["checks"]}
    assert checks["config"] == "ok" and checks["telegram"] == "ok", doctor.out
    assert [n for n, level in checks.items() if level == "fail"] in ([], ["units"]), doctor.out
    out = os.path.join(tmux_env.root, "units")
    assert run_cli("--config", config, "units", "render", "--out", out, env=env).code == 0


def test_the_units_header_names_a_command_that_works(tmux_env: TmuxEnv) -> None:
    out = os.path.join(tmux_env.root, "units")
    assert run_cli("units", "render", "--out", out, env=tmux_env.env).code == 0
    header = Path(out, SWEEP_SERVICE).read_text()
    command = re.search(r"Regenerate with `forge-tmux ([^`]+)`", header)
    assert command is not None, header
    again = os.path.join(tmux_env.root, "again")
    argv = [again if word == "DIR" else word for word in command.group(1).split()]
    result = run_cli(*argv, env=tmux_env.env)
    assert result.code == 0, result.err
    assert sorted(os.listdir(again)) == sorted(os.listdir(out))
