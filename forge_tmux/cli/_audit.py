"""`forge-tmux audit` (registered on the shared app when imported)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from forge_tmux.cli.base import emit_json
from forge_tmux.cli.common import JsonOpt, app, finish, start_logging


@app.command()
def audit(
    ctx: typer.Context,
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH...", help="Files or directories (recursive).")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Find tmux calls that use the shared default socket (no -L/-S) in shell scripts, Python
    files and unit files; print `file:line: text` for each.

    Exit 0 when none is found, 1 when some are (or a file could not be read), 2 for a missing path.
    """
    from forge_tmux import audit as core  # noqa: PLC0415

    start_logging(ctx)
    result = core.audit(paths)
    if json_out:
        emit_json(result.to_json())
    else:
        for finding in result.findings:
            print(finding.render())
        for problem in result.unreadable:
            sys.stderr.write(f"forge-tmux: cannot read {problem}\n")
        found = len(result.findings)
        sys.stderr.write(
            f"audit: {found} default-socket tmux call{'s' if found != 1 else ''} "
            f"in {result.files_scanned} file(s)\n"
        )
    finish(0 if result.ok else 1)
