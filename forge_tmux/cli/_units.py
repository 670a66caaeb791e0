"""`forge-tmux units render|install|uninstall|status` and `forge-tmux doctor`."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from forge_tmux import doctor as doctor_core
from forge_tmux import systemd_units as core
from forge_tmux.cli.base import emit_json
from forge_tmux.cli.common import JsonOpt, app, finish, start_logging, state
from forge_tmux.errors import UsageError
from forge_tmux.systemd_units import Mode

units_app = typer.Typer(
    name="units",
    help="The systemd units: render, install, uninstall, status.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(units_app)

ModeOpt = Annotated[
    Mode, typer.Option("--mode", help="user: systemctl --user units; system: system units.")
]
PostBootOpt = Annotated[
    bool,
    typer.Option(
        "--with-post-boot",
        help="Also forge-post-boot-sessions.service (runs `forge-tmux post-boot`); "
        "install never overwrites one you already have.",
    ),
]
ExecOpt = Annotated[
    str | None,
    typer.Option(
        "--exec",
        metavar="PATH",
        help="Absolute path of forge-tmux for ExecStart= (default: this one).",
    ),
]
MetricsOpt = Annotated[
    bool,
    typer.Option(
        "--with-health-metrics",
        help="Also forge-tmux-health.timer: writes `health --format prometheus` into "
        "node_exporter's textfile collector directory every --metrics-interval seconds.",
    ),
]
TextfileDirOpt = Annotated[
    str,
    typer.Option(
        "--textfile-dir",
        metavar="DIR",
        help="node_exporter's textfile collector directory (--collector.textfile.directory); "
        "the file is forge-tmux-UID.prom.",
    ),
]
IntervalOpt = Annotated[
    int,
    typer.Option(
        "--metrics-interval", metavar="SECONDS", help="Seconds between two metric files (10-3600)."
    ),
]
# `--run-as`, not `--user`: that spelling means "the user manager" to systemctl and to our own
# `--mode user`. The old spelling still works, hidden (documented as deprecated).
RunAsOpt = Annotated[
    str | None,
    typer.Option(
        "--run-as",
        metavar="USER",
        help="System mode: who the units run as (default: $SUDO_USER or you).",
    ),
]
OldUserOpt = Annotated[
    str | None, typer.Option("--user", metavar="USER", hidden=True, help="Old name of --run-as.")
]


def _run_as(run_as: str | None, old: str | None) -> str | None:
    if old is None:
        return run_as
    if run_as is not None:
        raise UsageError("--user is the old name of --run-as; give only --run-as")
    return old


@units_app.command()
def render(
    ctx: typer.Context,
    out: Annotated[
        str, typer.Option("--out", metavar="DIR", help="Directory to write the files into.")
    ],
    mode: ModeOpt = Mode.USER,
    with_post_boot: PostBootOpt = False,
    exec_path: ExecOpt = None,
    run_as: RunAsOpt = None,
    user: OldUserOpt = None,
    with_health_metrics: MetricsOpt = False,
    textfile_dir: TextfileDirOpt = core.TEXTFILE_DIR_DEFAULT,
    metrics_interval: IntervalOpt = core.METRICS_INTERVAL_DEFAULT,
    json_out: JsonOpt = False,
) -> None:
    """Write the rendered unit files (and the tmpfiles.d snippet) into --out."""
    # Render writes the bot's unit too (with_bot): files cost nothing until installed.
    opts = _options(
        ctx,
        mode,
        exec_path,
        _run_as(run_as, user),
        with_post_boot,
        True,
        with_health_metrics,
        textfile_dir,
        metrics_interval,
    )
    paths = core.write_files(core.render(opts), out)
    if json_out:
        emit_json({"mode": mode.value, "out": out, "files": list(paths)})
    else:
        print("\n".join(paths))
    finish(0)


def _options(
    ctx: typer.Context,
    mode: Mode,
    exec_path: str | None,
    user: str | None,
    with_post_boot: bool,
    with_bot: bool,
    with_health_metrics: bool,
    textfile_dir: str,
    metrics_interval: int,
) -> core.RenderOptions:
    """The rendering options `units render` and `units install` share."""
    return core.options(
        state(ctx).config,
        mode,
        exec_path=exec_path,
        user=user,
        with_bot=with_bot,
        with_post_boot=with_post_boot,
        with_health_metrics=with_health_metrics,
        textfile_dir=textfile_dir,
        metrics_interval=metrics_interval,
    )


@units_app.command()
def install(
    ctx: typer.Context,
    mode: ModeOpt = Mode.USER,
    with_post_boot: PostBootOpt = False,
    with_bot: Annotated[
        bool, typer.Option("--with-bot", help="Also install, enable and start the Telegram bot.")
    ] = False,
    exec_path: ExecOpt = None,
    run_as: RunAsOpt = None,
    user: OldUserOpt = None,
    with_health_metrics: MetricsOpt = False,
    textfile_dir: TextfileDirOpt = core.TEXTFILE_DIR_DEFAULT,
    metrics_interval: IntervalOpt = core.METRICS_INTERVAL_DEFAULT,
    json_out: JsonOpt = False,
) -> None:
    """Install the units, enable them, start the timer and run the first sweep.

    Exit 0 when all of that worked, 1 when systemd is not running or a step failed.
    """
    start_logging(ctx)
    opts = _options(
        ctx,
        mode,
        exec_path,
        _run_as(run_as, user),
        with_post_boot,
        with_bot,
        with_health_metrics,
        textfile_dir,
        metrics_interval,
    )
    _report(core.install(opts), json_out)


@units_app.command()
def uninstall(ctx: typer.Context, mode: ModeOpt = Mode.USER, json_out: JsonOpt = False) -> None:
    """Disable and remove exactly what `units install` installed, and nothing else."""
    start_logging(ctx)
    _report(core.uninstall(mode), json_out)


@units_app.command()
def status(ctx: typer.Context, mode: ModeOpt = Mode.USER, json_out: JsonOpt = False) -> None:
    """Which units are installed, enabled and active; the timer's next run; the last sweep.

    Exit 0 when the units are installed, enabled and the last sweep succeeded, else 1.
    """
    result = core.status(mode)
    if json_out:
        emit_json(result.to_json())
    else:
        print(core.render_status(result))
    finish(0 if result.ok else 1)


@units_app.command("report-failure")
def report_failure(
    ctx: typer.Context,
    unit: Annotated[str, typer.Argument(help="The unit that failed (OnFailure= passes %n).")],
    mode: ModeOpt = Mode.USER,
    json_out: JsonOpt = False,
) -> None:
    """OnFailure= handler of the sweep and the boot hook: tell Telegram that UNIT failed, once
    per run of failures (a successful sweep re-arms it). Exit 0, or 1 when the message stays in
    the outbox; without Telegram configured it only logs.
    """
    import logging  # noqa: PLC0415
    import os  # noqa: PLC0415
    import re  # noqa: PLC0415

    from forge_tmux import janitorstate, notify  # noqa: PLC0415
    from forge_tmux.errors import UsageError  # noqa: PLC0415

    start_logging(ctx)
    if not re.fullmatch(r"[\w@.:\\-]{1,255}", unit):
        raise UsageError(f"not a unit name: {unit!r}")
    lines = janitorstate.failure_lines(unit, mode.value, dict(os.environ))
    logging.getLogger("forge_tmux.units").error("%s", lines[0])
    settings = notify.for_job(state(ctx).config.telegram)
    told = settings is not None and settings.ready and janitorstate.claim_failure_report()
    delivery = notify.report(settings, notify.headline("janitor failed", lines) if told else None)
    if json_out:
        emit_json({"unit": unit, "told": told, "notify": delivery.to_json() if delivery else None})
    else:
        print(
            f"{lines[0]}; "
            + ("told Telegram" if told else "not told (told already or no Telegram)")
        )
    finish(1 if delivery is not None and not delivery.ok else 0)


def _report(outcome: core.Outcome, json_out: bool) -> None:
    if json_out:
        emit_json(outcome.to_json())
    else:
        # What was done goes to stdout; the failure is an error line on stderr, like every
        # other command's.
        done = core.render_outcome(dataclasses.replace(outcome, error=None))
        if done:
            print(done)
    if outcome.error:
        typer.echo(f"forge-tmux: error: {outcome.error}", err=True)
    finish(0 if outcome.ok else 1)


@app.command()
def doctor(
    ctx: typer.Context,
    mode: Annotated[
        Mode | None,
        typer.Option(
            "--mode", help="Which units to check (default: the installed ones, else user)."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check the installation, one line per check (ok/warn/FAIL); changes nothing.

    Exit 0 when no check failed (warnings allowed), 1 when any failed.
    """
    report = doctor_core.run(state(ctx).config_path, mode)
    if json_out:
        emit_json(report.to_json())
    else:
        print(doctor_core.render(report))
    finish(0 if report.ok else 1)
