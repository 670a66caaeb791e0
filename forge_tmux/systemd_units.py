"""The systemd units of forge-tmux: render, install, uninstall, status.

Templates live in `units/*.j2` (shipped as `forge_tmux.units`). Rendering is pure. Install writes
the files, records each with its checksum in a manifest, and enables through `forge_tmux.systemd`;
uninstall removes exactly what the manifest lists (and a file only while it is unchanged), so a
unit the operator wrote, such as their own `forge-post-boot-sessions.service`, is never touched.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import json
import os
import pwd
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from forge_tmux import __version__, janitorstate, systemd
from forge_tmux.config import Config
from forge_tmux.errors import UsageError
from forge_tmux.paths import TMUX_SOCKET_ROOT_DEFAULT, state_dir, tmux_socket_root

SWEEP_SERVICE: Final = "forge-tmux-socket-sweep.service"
SWEEP_TIMER: Final = "forge-tmux-socket-sweep.timer"
BOOT_SERVICE: Final = "forge-tmux-boot.service"
BOT_SERVICE: Final = "forge-tmux-bot.service"
POST_BOOT_SERVICE: Final = "forge-post-boot-sessions.service"
HEALTH_SERVICE: Final = "forge-tmux-health.service"
HEALTH_TIMER: Final = "forge-tmux-health.timer"
# Started by OnFailure= of the sweep and the boot hook; a template, never enabled.
FAILURE_SERVICE: Final = "forge-tmux-failure@.service"
# Debian's prometheus-node-exporter reads this directory (--collector.textfile.directory).
TEXTFILE_DIR_DEFAULT: Final = "/var/lib/prometheus/node-exporter"
METRICS_INTERVAL_DEFAULT: Final = 60
SAVE_SERVICE: Final = "forge-tmux-save.service"  # saves the spawned sessions at shutdown
TMPFILES: Final = "forge-tmux.conf"
TMPFILES_DIR: Final = "/etc/tmpfiles.d"
SYSTEM_UNIT_DIR: Final = "/etc/systemd/system"
SYSTEM_STATE_DIR: Final = "/var/lib/forge-tmux"
_TEMPLATE_OF: Final = {TMPFILES: "forge-tmux.tmpfiles.conf.j2"}

# Start timeouts of the oneshots (systemd time spans).
SWEEP_TIMEOUT: Final = "2min"
BOOT_TIMEOUT: Final = "3min"
POST_BOOT_TIMEOUT: Final = "10min"
HEALTH_TIMEOUT: Final = "1min"


class Mode(StrEnum):
    USER = "user"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Identity:
    """Whose tmux sockets the units look after."""

    user: str
    group: str
    uid: int
    home: str

    @classmethod
    def of(cls, name_or_uid: str | int) -> Identity:
        try:
            entry = (
                pwd.getpwuid(name_or_uid)
                if isinstance(name_or_uid, int)
                else pwd.getpwnam(name_or_uid)
            )
        except KeyError:
            raise UsageError(f"no such user: {name_or_uid}") from None
        try:
            group = grp.getgrgid(entry.pw_gid).gr_name
        except KeyError:
            group = str(entry.pw_gid)
        return cls(entry.pw_name, group, entry.pw_uid, entry.pw_dir)


@dataclass(frozen=True, slots=True)
class RenderOptions:
    mode: Mode
    exec_start: tuple[str, ...]  # the command that is forge-tmux, absolute
    identity: Identity
    config_path: str | None = None  # rendered as --config when the operator named one
    token_file: str | None = None
    telegram: bool = False  # whether the periodic sweep may talk to Telegram
    socket_dirs: tuple[str, ...] = ()  # extra socket directories from the config
    tmux_tmpdir: str | None = None  # TMUX_TMPDIR to pass on, when not /tmp
    with_bot: bool = True
    with_post_boot: bool = False
    with_health_metrics: bool = False
    textfile_dir: str = TEXTFILE_DIR_DEFAULT  # node_exporter's textfile collector directory
    metrics_interval: int = METRICS_INTERVAL_DEFAULT  # seconds between two health runs

    @property
    def textfile(self) -> str:
        """The file the health timer writes: one per user, so users on one host never clash."""
        return os.path.join(self.textfile_dir, f"forge-tmux-{self.identity.uid}.prom")


@dataclass(frozen=True, slots=True)
class RenderedFile:
    name: str
    text: str

    @property
    def is_unit(self) -> bool:
        return self.name != TMPFILES


def default_exec() -> tuple[str, ...]:
    """The running forge-tmux: the console script beside this interpreter, else `python -m`."""
    script = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "forge-tmux")
    if os.access(script, os.X_OK):
        return (script,)
    return (os.path.abspath(sys.executable), "-m", "forge_tmux")


def options(
    cfg: Config,
    mode: Mode,
    *,
    exec_path: str | None = None,
    user: str | None = None,
    with_bot: bool = True,
    with_post_boot: bool = False,
    with_health_metrics: bool = False,
    textfile_dir: str = TEXTFILE_DIR_DEFAULT,
    metrics_interval: int = METRICS_INTERVAL_DEFAULT,
) -> RenderOptions:
    """Render options from the config and the command line; bad input raises UsageError."""
    if exec_path is not None and not os.path.isabs(exec_path):
        raise UsageError(f"--exec must be an absolute path, not {exec_path!r}")
    if not os.path.isabs(textfile_dir) or any(c.isspace() or c in "%$\\\"'" for c in textfile_dir):
        raise UsageError(
            f"--textfile-dir must be an absolute path without spaces, quotes, % or $: "
            f"{textfile_dir!r}"
        )
    if not 10 <= metrics_interval <= 3600:
        raise UsageError(f"--metrics-interval must be 10 to 3600 seconds, not {metrics_interval}")
    if user is not None and mode is Mode.USER:
        raise UsageError("--run-as is for --mode system; user units run as their own user")
    if mode is Mode.SYSTEM:
        name = user or os.environ.get("SUDO_USER") or os.getuid()
        identity = Identity.of(name)
    else:
        identity = Identity.of(os.getuid())
    token_file = cfg.telegram.token_file
    if token_file is not None and not os.path.isabs(token_file):
        raise UsageError(
            f"telegram.token_file must be an absolute path for the units: {token_file}"
        )
    root = tmux_socket_root()
    return RenderOptions(
        mode=mode,
        exec_start=(exec_path,) if exec_path else default_exec(),
        identity=identity,
        config_path=cfg.path,
        token_file=token_file,
        telegram=token_file is not None or cfg.telegram.chat_id is not None,
        socket_dirs=cfg.socket_dirs,
        tmux_tmpdir=root if root != TMUX_SOCKET_ROOT_DEFAULT else None,
        with_bot=with_bot,
        with_post_boot=with_post_boot,
        with_health_metrics=with_health_metrics,
        textfile_dir=os.path.normpath(textfile_dir),
        metrics_interval=metrics_interval,
    )


def _quote(arg: str) -> str:
    """One ExecStart= word: `%` and `$` escaped (specifiers, variables), quoted when needed."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if any(c.isspace() or c in "\"'\\;" for c in text) or not text:
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _state_dir(opts: RenderOptions) -> str:
    if opts.mode is Mode.USER:
        return state_dir()
    return os.path.join(opts.identity.home, ".local", "state", "forge-tmux")


def file_names(opts: RenderOptions) -> tuple[str, ...]:
    names = [SWEEP_SERVICE, SWEEP_TIMER, BOOT_SERVICE, SAVE_SERVICE]
    if opts.with_bot:
        names.append(BOT_SERVICE)
    if opts.with_post_boot:
        names.append(POST_BOOT_SERVICE)
    if opts.with_health_metrics:
        names += [HEALTH_SERVICE, HEALTH_TIMER]
    return (*names, FAILURE_SERVICE, TMPFILES)


def render(opts: RenderOptions) -> tuple[RenderedFile, ...]:
    """Render every file the options ask for (pure: reads only the templates)."""
    import importlib.resources  # noqa: PLC0415 - jinja2 stays off the sweep's import path

    import jinja2  # noqa: PLC0415

    templates = importlib.resources.files("forge_tmux.units")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: templates.joinpath(name).read_text("utf-8")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - unit files, not HTML
    )
    root = opts.tmux_tmpdir or TMUX_SOCKET_ROOT_DEFAULT
    tmux_dir = os.path.join(root, f"tmux-{opts.identity.uid}")
    head = [_quote(word) for word in opts.exec_start]
    if opts.config_path:
        head += ["--config", _quote(opts.config_path)]
    context: dict[str, Any] = {
        "mode": opts.mode.value,
        "version": __version__,
        "exec_start": " ".join(head),
        "user": opts.identity.user,
        "group": opts.identity.group,
        "uid": opts.identity.uid,
        "token_file": opts.token_file.replace("%", "%%") if opts.token_file else None,
        "telegram": opts.telegram,
        "tmux_tmpdir": opts.tmux_tmpdir,
        "writable_paths": [tmux_dir, *opts.socket_dirs, _state_dir(opts)],
        "tmux_dirs": sorted({f"{TMUX_SOCKET_ROOT_DEFAULT}/tmux-*", f"{root}/tmux-*"})
        + list(opts.socket_dirs),
        "boot_target": "default.target" if opts.mode is Mode.USER else "multi-user.target",
        "sweep_timeout": SWEEP_TIMEOUT,
        "boot_timeout": BOOT_TIMEOUT,
        "post_boot_timeout": POST_BOOT_TIMEOUT,
        "health_timeout": HEALTH_TIMEOUT,
        "textfile_dir": opts.textfile_dir,
        "textfile": opts.textfile,
        "metrics_interval": opts.metrics_interval,
    }
    return tuple(
        RenderedFile(
            name, _tidy(env.get_template(_TEMPLATE_OF.get(name, name + ".j2")).render(context))
        )
        for name in file_names(opts)
    )


def _tidy(text: str) -> str:
    """Blank lines only before a [Section] (the macros leave others behind); one final newline."""
    lines: list[str] = []
    for line in text.strip("\n").split("\n"):
        if line.strip():
            if line.startswith("[") and lines:
                lines.append("")
            lines.append(line.rstrip())
    return "\n".join(lines) + "\n"


def write_files(files: tuple[RenderedFile, ...], out_dir: str) -> tuple[str, ...]:
    """Write rendered files into `out_dir` (created if missing); the written paths."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        return tuple(_write_atomic(os.path.join(out_dir, f.name), f.text) for f in files)
    except OSError as exc:
        raise UsageError(f"cannot write into {out_dir}: {exc.strerror or exc}") from None


def _write_atomic(path: str, text: str) -> str:
    from forge_tmux.atomic import write_atomic  # noqa: PLC0415

    write_atomic(path, text, 0o644)
    return path


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# install / uninstall / status


def unit_dir(mode: Mode) -> str:
    if mode is Mode.SYSTEM:
        return SYSTEM_UNIT_DIR
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "systemd", "user")


def manifest_path(mode: Mode) -> str:
    base = state_dir() if mode is Mode.USER else SYSTEM_STATE_DIR
    return os.path.join(base, f"units-{mode.value}.json")


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an install wrote: file path -> sha256, the units it enabled, directories it made."""

    mode: Mode
    files: dict[str, str] = field(default_factory=dict)
    enabled: tuple[str, ...] = ()
    created_dirs: tuple[str, ...] = ()
    linger_enabled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "mode": self.mode.value,
            "files": self.files,
            "enabled": list(self.enabled),
            "created_dirs": list(self.created_dirs),
            "linger_enabled": self.linger_enabled,
        }


def load_manifest(mode: Mode) -> Manifest | None:
    try:
        with open(manifest_path(mode), encoding="utf-8") as fh:
            data = json.load(fh)
        return Manifest(
            mode=mode,
            files={str(k): str(v) for k, v in data["files"].items()},
            enabled=tuple(str(u) for u in data["enabled"]),
            created_dirs=tuple(str(d) for d in data["created_dirs"]),
            linger_enabled=bool(data.get("linger_enabled", False)),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"unreadable manifest {manifest_path(mode)}: {exc}") from None


def _save_manifest(manifest: Manifest) -> None:
    path = manifest_path(manifest.mode)
    _write_atomic(path, json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of install or uninstall: what was done, what was left alone, and why."""

    action: str
    mode: Mode
    unit_dir: str
    ok: bool
    written: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    enabled: tuple[str, ...] = ()
    started: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "ok": self.ok,
            "mode": self.mode.value,
            "unit_dir": self.unit_dir,
            "written": list(self.written),
            "removed": list(self.removed),
            "kept": list(self.kept),
            "enabled": list(self.enabled),
            "started": list(self.started),
            "notes": list(self.notes),
            "error": self.error,
        }


def _manager_error(mode: Mode) -> str | None:
    """Why units cannot be managed right now, or None when a manager answers."""
    try:
        state = systemd.manager_state(user=mode is Mode.USER)
    except systemd.SystemdNotFound as exc:
        return f"{exc}: systemd is not installed"
    if state is None:
        which = "user manager (systemctl --user)" if mode is Mode.USER else "system manager"
        return f"no running systemd {which}"
    return None


def _makedirs(path: str, created: list[str], mode: int = 0o755) -> None:
    """mkdir -p that records each directory it created, outermost first."""
    missing: list[str] = []
    here = os.path.abspath(path)
    while not os.path.isdir(here):
        missing.append(here)
        here = os.path.dirname(here)
    for directory in reversed(missing):
        os.mkdir(directory, mode)
        created.append(directory)


def _wants_dirs(directory: str) -> set[str]:
    try:
        return {os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".wants")}
    except OSError:
        return set()


def _post_boot_is_users(previous: Manifest, target: str, mode: Mode) -> bool:
    """True when a forge-post-boot-sessions.service exists that is not ours as we wrote it."""
    if os.path.lexists(target):
        return previous.files.get(target) != _sha256(target)
    loaded = systemd.show(POST_BOOT_SERVICE, ["LoadState"], user=mode is Mode.USER)
    return loaded.get("LoadState") == "loaded"


def install(opts: RenderOptions) -> Outcome:
    """Write the units, daemon-reload, enable them, start the timer (and the bot when asked),
    run the first sweep through systemd, and see to lingering in user mode."""
    mode = opts.mode
    where = unit_dir(mode)
    user = mode is Mode.USER
    _need_root(mode)
    problem = _manager_error(mode)
    if problem:
        return Outcome("install", mode, where, False, error=f"{problem}; nothing installed")
    previous = load_manifest(mode) or Manifest(mode)
    try:
        written = _write_units(opts, where, previous)
    except OSError as exc:
        return Outcome("install", mode, where, False, error=f"cannot write: {exc}")
    manifest = written.manifest
    also = [u for u in (SAVE_SERVICE, BOT_SERVICE, HEALTH_TIMER) if u in written.units]
    steps = [
        ["daemon-reload"],
        ["enable", *written.units],
        ["start", SWEEP_TIMER, *also],
        # The first sweep, through systemd: proves the unit works as installed.
        ["start", SWEEP_SERVICE],
    ]
    for args in steps:
        result = systemd.systemctl(args, user=user, timeout=180)
        if not result.ok:
            return written.outcome(False, f"systemctl {' '.join(args)} failed: {result.why}")
    notes = list(written.notes)
    linger_enabled = previous.linger_enabled
    if user:
        enabled_now, note = _see_to_lingering()
        linger_enabled = linger_enabled or enabled_now
        if note:
            notes.append(note)
    new_wants = tuple(sorted(_wants_dirs(where) - written.wants_before))
    _save_manifest(
        Manifest(
            mode,
            manifest.files,
            manifest.enabled,
            (*manifest.created_dirs, *new_wants),
            linger_enabled,
        )
    )
    started = (SWEEP_TIMER, SWEEP_SERVICE, *also)
    return Outcome(
        "install",
        mode,
        where,
        True,
        written=written.paths,
        kept=written.kept,
        enabled=tuple(written.units),
        started=started,
        notes=tuple(notes),
    )


@dataclass(frozen=True, slots=True)
class _Written:
    """What the file-writing half of an install did (the manifest is already saved)."""

    manifest: Manifest
    units: tuple[str, ...]
    paths: tuple[str, ...]
    kept: tuple[str, ...]
    notes: tuple[str, ...]
    wants_before: frozenset[str]

    def outcome(self, ok: bool, error: str | None = None) -> Outcome:
        m = self.manifest
        return Outcome(
            "install",
            m.mode,
            unit_dir(m.mode),
            ok,
            written=self.paths,
            kept=self.kept,
            notes=self.notes,
            error=error,
        )


def _write_units(opts: RenderOptions, where: str, previous: Manifest) -> _Written:
    """Write every rendered file (never the operator's own post-boot unit) and save the manifest
    before anything is enabled, so that uninstall can always take back what was written."""
    mode = opts.mode
    files = dict(previous.files)
    created = list(previous.created_dirs)
    paths: list[str] = []
    kept: list[str] = []
    notes: list[str] = []
    units: list[str] = []
    _makedirs(where, created)
    _makedirs(os.path.dirname(manifest_path(mode)), created, 0o700)
    wants_before = frozenset(_wants_dirs(where))
    for rendered in render(opts):
        if not rendered.is_unit:
            target = os.path.join(TMPFILES_DIR, rendered.name)
            if not os.access(TMPFILES_DIR, os.W_OK):
                notes.append(
                    "systemd-tmpfiles may age out live tmux sockets in /tmp; to prevent it run: "
                    f"forge-tmux units render --mode {mode.value} --out ~/forge-tmux-units && "
                    f"sudo install -m 0644 ~/forge-tmux-units/{TMPFILES} {target}"
                )
                continue
        else:
            target = os.path.join(where, rendered.name)
            if rendered.name == POST_BOOT_SERVICE and _post_boot_is_users(previous, target, mode):
                kept.append(target)
                notes.append(f"kept your own {POST_BOOT_SERVICE}; not overwritten")
                files.pop(target, None)  # the operator's now, if it ever was ours
                continue
            if rendered.name not in _NEVER_ENABLED:
                units.append(rendered.name)
        _write_atomic(target, rendered.text)
        files[target] = hashlib.sha256(rendered.text.encode()).hexdigest()
        paths.append(target)
    # A unit enabled by an earlier install (the bot, say) stays on the list until uninstall.
    earlier = [u for u in previous.enabled if u not in units and os.path.join(where, u) in files]
    enabled = (*units, *earlier)
    manifest = Manifest(mode, files, enabled, tuple(created), previous.linger_enabled)
    _save_manifest(manifest)
    return _Written(manifest, tuple(units), tuple(paths), tuple(kept), tuple(notes), wants_before)


# Started by others (a timer, OnFailure=), without an [Install] section of their own.
_NEVER_ENABLED: Final = frozenset({FAILURE_SERVICE, HEALTH_SERVICE})


def _need_root(mode: Mode) -> None:
    if mode is Mode.SYSTEM and os.geteuid() != 0:
        raise UsageError(f"--mode system needs root (it changes {SYSTEM_UNIT_DIR})")


def _see_to_lingering() -> tuple[bool, str]:
    """Enable lingering when it is off; (whether we enabled it, a note for the operator)."""
    name = pwd.getpwuid(os.getuid()).pw_name
    if systemd.lingering(name):
        return False, ""
    try:
        result = systemd.loginctl(["enable-linger", name], timeout=20)
    except systemd.SystemdNotFound:
        result = None
    if result is not None and result.ok and systemd.lingering(name):
        return True, f"enabled lingering for {name}: the units start at boot, without a login"
    return False, (
        f"lingering is off for {name}: the units start at your first login, not at boot; "
        f"to start them at boot run: sudo loginctl enable-linger {name}"
    )


def uninstall(mode: Mode) -> Outcome:
    """Disable and remove exactly what the manifest lists; a file changed since it was written
    is kept (and said so)."""
    where = unit_dir(mode)
    user = mode is Mode.USER
    _need_root(mode)
    manifest = load_manifest(mode)
    if manifest is None:
        # The sweep's own record (metrics) goes too, installed or not: install.sh's first sweep
        # without systemd writes one. In system mode it is the invoking user's.
        forgotten = tuple(janitorstate.forget())
        nothing = ("nothing installed (no manifest)",)
        return Outcome("uninstall", mode, where, True, removed=forgotten, notes=nothing)
    notes: list[str] = []
    running = _manager_error(mode) is None
    if running and manifest.enabled:
        result = systemd.systemctl(["disable", "--now", *manifest.enabled], user=user, timeout=120)
        if not result.ok:
            notes.append(f"systemctl disable: {result.why}")
    removed: list[str] = []
    kept: list[str] = []
    for path, digest in sorted(manifest.files.items()):
        current = _sha256(path)
        if current is None:
            continue
        if current != digest:
            kept.append(path)
            notes.append(f"kept {path}: changed since forge-tmux wrote it")
            continue
        os.unlink(path)
        removed.append(path)
    removed += _remove_our_links(where, manifest)
    if running:
        systemd.systemctl(["daemon-reload"], user=user)
        systemd.systemctl(["reset-failed", *manifest.enabled], user=user)
    if manifest.linger_enabled:
        name = pwd.getpwuid(os.getuid()).pw_name
        with contextlib.suppress(systemd.SystemdNotFound):
            systemd.loginctl(["disable-linger", name], timeout=20)
    os.unlink(manifest_path(mode))
    # The sweep's record, now that no unit runs a sweep; with the manifest gone as well, the
    # state directory is removed when nothing else lives there.
    removed += janitorstate.forget()
    for directory in reversed(manifest.created_dirs):
        with contextlib.suppress(OSError):  # not empty: something else lives there now
            os.rmdir(directory)
    return Outcome(
        "uninstall",
        mode,
        where,
        not kept,
        removed=tuple(removed),
        kept=tuple(kept),
        notes=tuple(notes),
    )


def _remove_our_links(where: str, manifest: Manifest) -> list[str]:
    """`.wants` links to our units that `disable` could not remove (no running manager)."""
    removed = []
    ours = set(manifest.files)
    for wants in _wants_dirs(where):
        for name in os.listdir(wants):
            link = os.path.join(wants, name)
            if os.path.islink(link) and os.path.join(where, name) in ours:
                os.unlink(link)
                removed.append(link)
    return removed


@dataclass(frozen=True, slots=True)
class UnitStatus:
    name: str
    path: str
    installed: bool
    ours: bool
    enabled: str  # systemctl is-enabled: enabled, disabled, static, not-found, unknown
    active: str  # systemctl is-active: active, inactive, failed, activating, unknown

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "installed": self.installed,
            "ours": self.ours,
            "enabled": self.enabled,
            "active": self.active,
        }


@dataclass(frozen=True, slots=True)
class Status:
    mode: Mode
    unit_dir: str
    manager: str | None  # the manager's state, None when none answers
    units: tuple[UnitStatus, ...]
    timer_next: str | None  # wall-clock time of the timer's next run
    last_sweep: dict[str, str]  # Result, ExecMainStatus, ExecMainExitTimestamp of the sweep
    lingering: bool | None  # user mode only

    @property
    def ok(self) -> bool:
        """Installed, enabled and the timer running; the last sweep (if any) succeeded."""
        core = [u for u in self.units if u.name in (SWEEP_SERVICE, SWEEP_TIMER, BOOT_SERVICE)]
        return (
            self.manager is not None
            and all(u.installed and u.enabled == "enabled" for u in core)
            and any(u.name == SWEEP_TIMER and u.active == "active" for u in core)
            and self.last_sweep.get("Result", "success") == "success"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "mode": self.mode.value,
            "unit_dir": self.unit_dir,
            "manager": self.manager,
            "units": [u.to_json() for u in self.units],
            "timer_next": self.timer_next,
            "last_sweep": self.last_sweep,
            "lingering": self.lingering,
        }


_ALL_UNITS: Final = (
    SWEEP_SERVICE,
    SWEEP_TIMER,
    BOOT_SERVICE,
    BOT_SERVICE,
    POST_BOOT_SERVICE,
    HEALTH_SERVICE,
    HEALTH_TIMER,
)


def status(mode: Mode) -> Status:
    """Read-only: what is installed and how systemd sees it."""
    where = unit_dir(mode)
    user = mode is Mode.USER
    try:
        manifest = load_manifest(mode)
    except UsageError:
        manifest = None
    ours = set(manifest.files) if manifest else set()
    try:
        manager = systemd.manager_state(user=user)
    except systemd.SystemdNotFound:
        manager = None
    units = []
    for name in _ALL_UNITS:
        path = os.path.join(where, name)
        installed = os.path.exists(path)
        enabled = active = "unknown"
        if manager is not None:
            enabled = systemd.systemctl(["is-enabled", name], user=user).stdout.strip()
            enabled = enabled or ("unknown" if installed else "not-found")
            active = systemd.systemctl(["is-active", name], user=user).stdout.strip() or "unknown"
        units.append(UnitStatus(name, path, installed, path in ours, enabled, active))
    timer_next = None
    last_sweep: dict[str, str] = {}
    if manager is not None:
        when = systemd.timer_next(SWEEP_TIMER, user=user)
        timer_next = when.isoformat(sep=" ", timespec="seconds") if when else None
        last_sweep = systemd.show(
            SWEEP_SERVICE, ["Result", "ExecMainStatus", "ExecMainExitTimestamp"], user=user
        )
    lingering = None
    if user:
        lingering = systemd.lingering(pwd.getpwuid(os.getuid()).pw_name)
    return Status(mode, where, manager, tuple(units), timer_next, last_sweep, lingering)


def render_outcome(outcome: Outcome) -> str:
    """Human lines for install/uninstall."""
    lines = [f"{outcome.action}: wrote {p}" for p in outcome.written]
    lines += [f"{outcome.action}: removed {p}" for p in outcome.removed]
    lines += [f"{outcome.action}: kept {p}" for p in outcome.kept]
    if outcome.enabled and outcome.action == "install" and outcome.ok:
        lines.append(f"install: enabled {' '.join(outcome.enabled)}")
        lines.append(f"install: started {' '.join(outcome.started)}")
    lines += [f"note: {n}" for n in outcome.notes]
    if outcome.error:
        lines.append(f"error: {outcome.error}")
    elif outcome.ok:
        lines.append(f"{outcome.action}: done ({outcome.mode.value} mode, {outcome.unit_dir})")
    return "\n".join(lines)


def render_status(result: Status) -> str:
    lines = [f"manager: {result.manager or 'not running'} ({result.mode.value} mode)"]
    for unit in result.units:
        where = ("ours" if unit.ours else "not ours") if unit.installed else "not installed"
        lines.append(f"{unit.name}: {where}, {unit.enabled}, {unit.active}")
    lines.append(f"timer next run: {result.timer_next or 'unknown'}")
    if result.last_sweep:
        sweep = result.last_sweep
        when = sweep.get("ExecMainExitTimestamp") or "never"
        lines.append(
            f"last sweep: {sweep.get('Result', '?')}, "
            f"exit status {sweep.get('ExecMainStatus', '?')}, at {when}"
        )
    if result.lingering is not None:
        lines.append(f"lingering: {'on' if result.lingering else 'off'}")
    return "\n".join(lines)
