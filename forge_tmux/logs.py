"""Logging set-up, done once by the CLI: plain lines on a terminal, `<N>` priorities in the journal.

systemd turns a leading `<N>` on a stderr line into journal priority N (SyslogLevelPrefix=), which
is how a service logs at notice or warning without a journald library.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import types
from collections.abc import Iterable

from forge_tmux import secret

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, NOTICE: 5, logging.WARNING: 4, logging.ERROR: 3}
# Telegram bot tokens look like `123456789:AA...`; they appear in httpx request URLs.
_TOKEN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}")


def redact(text: str) -> str:
    """Remove the secrets forge-tmux has read, literally and whatever their shape, and anything
    else that looks like a Telegram bot token (another bot's, say, in an error text)."""
    return _TOKEN.sub("<token>", secret.hide(text))


def stderr_is_journal() -> bool:
    """True when stderr is the journal stream systemd connected us to ($JOURNAL_STREAM)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(part) for part in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class _Formatter(logging.Formatter):
    """Every line of a record gets its own prefix: `<N>` in the journal (each line becomes an
    entry of that priority), `forge-tmux: ` on a terminal. So a batch of events can be logged as
    one multi-line record and still read as one line per event."""

    def __init__(self, journal: bool) -> None:
        super().__init__("%(message)s")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        if self.journal:
            priority = _PRIORITY.get(record.levelno, 3 if record.levelno > logging.ERROR else 6)
            prefix = f"<{priority}>"
        else:
            prefix = "forge-tmux: "
        return "\n".join(prefix + line for line in text.splitlines())


_configured = False


def setup(verbose: bool = False) -> None:
    """Configure the root logger once: stderr, journal priorities, tokens redacted."""
    global _configured  # noqa: PLW0603 - process-wide logging is configured exactly once
    if _configured:
        return
    _configured = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(stderr_is_journal()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else NOTICE)
    # httpx logs every request URL at INFO, and a Bot API URL contains the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # What would reach stderr around the logger goes through it, redacted: warnings, and the
    # traceback of an exception nothing caught (in any thread), which may quote the token.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], exc: BaseException, tb: types.TracebackType | None
) -> None:
    logging.getLogger("forge_tmux").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    exc = args.exc_value or args.exc_type()
    thread = args.thread.name if args.thread else "?"
    logging.getLogger("forge_tmux").critical(
        "uncaught exception in thread %s", thread, exc_info=(args.exc_type, exc, args.exc_traceback)
    )


def log_events(log: logging.Logger, events: Iterable[tuple[int, str]]) -> None:
    """Log (level, text) events as a core module returns them (e.g. sweep.log_events), one
    record each."""
    for level, text in events:
        log.log(level, "%s", text)
