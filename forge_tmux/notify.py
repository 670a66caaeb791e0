"""Telegram notifications: settings and secrets, HTML text, and an outbox that loses nothing.

Delivery rules (issue 5):
- Every message is written to the outbox (one file each, in the state directory) *before* it is
  sent, and removed only once Telegram has answered that it has it. A crash, a refused
  connection or a 429 therefore never loses a message; the next command that notifies delivers
  the outbox oldest first, under a lock, so two commands never send the same file.
- A refused connection (or a connect/pool timeout: nothing was sent) is retried a few times with
  back-off; a 429 waits `retry_after` when that fits in the time budget.
- A read timeout, or a connection lost after the request went out, means Telegram may well have
  the message. It is not retried, now or later: the file moves to `outbox/uncertain/` and a
  warning names it. Sending it again could post it twice; dropping it silently could lose it;
  keeping it aside is the only choice that does neither (docs/telegram.md).
- A message is stored whole or not at all (a short write is continued; any error removes the
  temporary file), so Telegram never gets a message cut by a full disk. A message that cannot be
  stored does not stop the outbox: what waits is delivered first, which frees space, and the
  message is stored and sent after it (see docs/security.md).
- The whole delivery is bounded by `telegram.timeout` (20 s by default) and never raises into the
  job it reports on. python-telegram-bot is imported only when there is a message to send.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import html
import logging
import os
import socket
import stat
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Final, Literal, NamedTuple

from forge_tmux import secret
from forge_tmux.atomic import fsync_dir, write_atomic
from forge_tmux.errors import UsageError
from forge_tmux.logs import redact
from forge_tmux.paths import state_dir

if TYPE_CHECKING:
    from telegram import Bot

    from forge_tmux.config import TelegramConfig

log = logging.getLogger(__name__)

DEFAULT_API_URL: Final = "https://api.telegram.org/bot"
CREDENTIAL_NAME: Final = "telegram-token"
MAX_CHARS: Final = 4096
TRIMMED: Final = "\n… (trimmed)"
# Back-off between attempts after a refused connection; its length bounds the attempts.
REFUSED_BACKOFF: Final = (0.5, 1.0, 2.0)
# No single HTTP request may take longer than this, whatever the overall budget.
REQUEST_TIMEOUT: Final = 10.0


class TelegramSettings:
    """Where notifications go. A plain class so that its repr can never show the token."""

    __slots__ = ("api_url", "chat_id", "timeout", "token")

    def __init__(
        self, token: str | None, chat_id: str | None, api_url: str, timeout: float
    ) -> None:
        self.token = token
        self.chat_id = chat_id
        self.api_url = api_url
        self.timeout = timeout

    @property
    def ready(self) -> bool:
        return bool(self.token and self.chat_id)

    def missing(self) -> str:
        """What is missing for notifications to work, as one phrase, or ""."""
        parts = []
        if not self.token:
            parts.append(
                "a bot token (FORGE_TMUX_TELEGRAM_TOKEN, telegram.token_file "
                f"or the systemd credential {CREDENTIAL_NAME})"
            )
        if not self.chat_id:
            parts.append("a chat id (FORGE_TMUX_TELEGRAM_CHAT_ID or telegram.chat_id)")
        return " and ".join(parts)

    def __repr__(self) -> str:
        token = "<set>" if self.token else None
        return (
            f"TelegramSettings(token={token}, chat_id={self.chat_id!r}, api_url={self.api_url!r})"
        )


def read_token_file(path: str, *, check_mode: bool = True) -> str:
    """The token in `path`; a file that group or other may read is refused (UsageError)."""
    try:
        # O_NONBLOCK: a FIFO named as the token file must not hang the open (it is refused
        # below as not a regular file); on a regular file the flag changes nothing.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise UsageError(f"telegram token file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"telegram token file {path}: not a regular file")
        if check_mode and st.st_mode & 0o077:
            raise UsageError(
                f"telegram token file {path} is accessible by group or other "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
            )
        raw = fh.read(4096)
    token = raw.decode("utf-8", "replace").strip()
    if not token or any(ch.isspace() for ch in token):
        # Never echo the content: it is (almost) a secret.
        raise UsageError(f"telegram token file {path}: must hold the token alone on one line")
    return token


TOKEN_ENV: Final = "FORGE_TMUX_TELEGRAM_TOKEN"  # noqa: S105 (a variable name, not a token)


class TokenSource(NamedTuple):
    """Where the token comes from: the environment variable, the token file or the credential."""

    kind: Literal["environment", "file", "credential"]
    where: str  # the variable's name or the file's path

    def describe(self) -> str:
        return f"systemd credential {CREDENTIAL_NAME}" if self.kind == "credential" else self.where


def token_source(
    cfg: TelegramConfig, environ: Mapping[str, str] | None = None
) -> TokenSource | None:
    """The one precedence rule, without reading anything: FORGE_TMUX_TELEGRAM_TOKEN, else
    `telegram.token_file`, else the systemd credential; None when no token is configured."""
    env = os.environ if environ is None else environ
    if env.get(TOKEN_ENV, "").strip():
        return TokenSource("environment", TOKEN_ENV)
    credential = None
    if env.get("CREDENTIALS_DIRECTORY"):
        candidate = os.path.join(env["CREDENTIALS_DIRECTORY"], CREDENTIAL_NAME)
        credential = candidate if os.path.exists(candidate) else None
    if cfg.token_file:
        token_file = os.path.expanduser(cfg.token_file)
        # Unless a system unit's LoadCredential= read the root-only file for us.
        if credential is None or os.access(token_file, os.R_OK):
            return TokenSource("file", token_file)
    return None if credential is None else TokenSource("credential", credential)


def resolve(cfg: TelegramConfig, environ: Mapping[str, str] | None = None) -> TelegramSettings:
    """Settings from the environment over the config file; the token from `token_source`."""
    env = os.environ if environ is None else environ
    source = token_source(cfg, env)
    token = None
    if source is not None and source.kind == "environment":
        token = env[TOKEN_ENV].strip()
    elif source is not None:
        # systemd owns the mode of credentials (0400, ours); no mode check to make.
        token = read_token_file(source.where, check_mode=source.kind == "file")
    secret.add(token)  # from now on redacted in logs and kept from every tmux server
    chat_id = env.get("FORGE_TMUX_TELEGRAM_CHAT_ID", "").strip() or cfg.chat_id
    api_url = env.get("FORGE_TMUX_TELEGRAM_API_URL", "").strip() or cfg.api_url or DEFAULT_API_URL
    if not api_url.startswith(("http://", "https://")):
        raise UsageError(f"telegram API URL must start with http:// or https://: {api_url}")
    return TelegramSettings(token, chat_id, api_url, cfg.timeout)


def hold_token_secret(cfg: TelegramConfig) -> None:
    """Read the configured token only to keep it secret (a spawn that does not notify: no
    session may inherit it, under any variable name). What cannot be read cannot be handed on
    by us either, so a token file that is refused is not an error here."""
    with contextlib.suppress(UsageError):
        resolve(cfg)


# --- text -------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Text made safe for ParseMode.HTML."""
    return html.escape(text, quote=False)


def fit(text: str, limit: int = MAX_CHARS) -> str:
    """HTML text cut to `limit` characters with a visible "(trimmed)" marker. The cut never
    splits an entity (`&amp;`) or a tag, and tags left open are closed."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(TRIMMED) - 16]  # room for closing tags
    amp, semi = cut.rfind("&"), cut.rfind(";")
    if amp > semi:
        cut = cut[:amp]
    lt, gt = cut.rfind("<"), cut.rfind(">")
    if lt > gt:
        cut = cut[:lt]
    open_tags: list[str] = []
    for tag in ("b", "i", "code", "pre"):
        if cut.count(f"<{tag}>") > cut.count(f"</{tag}>"):
            open_tags.append(tag)
    return cut + "".join(f"</{t}>" for t in reversed(open_tags)) + TRIMMED


def headline(title: str, lines: list[str] | tuple[str, ...] = ()) -> str:
    """A message: `<b>host</b> title` and plain lines, every variable part escaped."""
    host = escape(socket.gethostname())
    body = "\n".join(escape(line) for line in lines if line)
    return fit(f"<b>{host}</b> {escape(title)}" + (f"\n{body}" if body else ""))


# --- the outbox -------------------------------------------------------------------------------

SUFFIX: Final = ".html"
TMP_PREFIX: Final = ".tmp-"
UNCERTAIN: Final = "uncertain"
REJECTED: Final = "rejected"


def outbox_dir() -> str:
    return os.path.join(state_dir(), "outbox")


class Outbox:
    """One file per message, named so that sorting is age order; written atomically."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or outbox_dir()
        self._seq = 0

    def _ensure(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)

    def put(self, text: str) -> str:
        """Store a message whole or not at all; returns its name. Written in full (a short
        write is continued), fsynced, renamed into the queue, the directory fsynced. On any
        error (ENOSPC, EIO, ...) the temporary file is removed and the error raised: the queue
        never holds a cut message, and no `.tmp-*` file is left behind."""
        self._ensure()
        self._seq += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:04d}{SUFFIX}"
        tmp = os.path.join(self.directory, f"{TMP_PREFIX}{name}")
        write_atomic(os.path.join(self.directory, name), text, tmp=tmp)
        return name

    def drop_leftovers(self) -> None:
        """Remove temporary files of processes that are gone (killed between writing and
        renaming, or left by forge-tmux 0.1.0). A live writer's file is never touched: the pid
        is in the name, and a pid that exists, whoever it is now, keeps its file."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for entry in names:
            if not entry.startswith(TMP_PREFIX):
                continue
            parts = entry[len(TMP_PREFIX) :].split("-")
            if len(parts) < 3 or not parts[1].isdigit() or _pid_exists(int(parts[1])):
                continue
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, entry))

    def pending(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.endswith(SUFFIX) and not n.startswith("."))

    def read(self, name: str) -> str:
        with open(os.path.join(self.directory, name), encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, name))
        self._sync_dir()

    def set_aside(self, name: str, shelf: str) -> str:
        """Move a message out of the queue into `uncertain/` or `rejected/`; returns its path."""
        target_dir = os.path.join(self.directory, shelf)
        os.makedirs(target_dir, mode=0o700, exist_ok=True)
        target = os.path.join(target_dir, name)
        os.rename(os.path.join(self.directory, name), target)
        self._sync_dir()
        return target

    def _sync_dir(self) -> None:
        fsync_dir(self.directory)

    @contextlib.contextmanager
    def locked(self, deadline: float) -> Iterator[bool]:
        """Hold the outbox lock, waiting for it until `deadline`; yields whether it was taken."""
        self._ensure()
        fd = os.open(
            os.path.join(self.directory, ".lock"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            yield True
        finally:
            os.close(fd)


# --- delivery ---------------------------------------------------------------------------------


class Delivery(NamedTuple):
    """What one delivery run did. `queued` messages are still in the outbox for the next run."""

    delivered: int = 0
    queued: int = 0
    uncertain: int = 0
    rejected: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.queued

    def to_json(self) -> dict[str, object]:
        return {
            "delivered": self.delivered,
            "queued": self.queued,
            "uncertain": self.uncertain,
            "rejected": self.rejected,
            "error": self.error,
        }


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no pid at all
        return False
    except OSError:
        return True  # EPERM: it exists, someone else's
    return True


class _Outcome(NamedTuple):
    kind: str  # sent | stop | uncertain | rejected
    reason: str = ""


def deliver(
    settings: TelegramSettings, text: str | None = None, *, outbox: Outbox | None = None
) -> Delivery:
    """Queue `text` (if any) and deliver the whole outbox, oldest first. Never raises; a failure
    is logged here, once (callers print the counts, not the reason again).

    A message that cannot be stored (a full state directory) does not stop the outbox: what
    waits is delivered first, which frees the space, and the message is stored and delivered
    after it. Only when it still cannot be stored is it lost, and the error says so."""
    if not settings.ready:
        return Delivery(error=f"Telegram is not configured: missing {settings.missing()}")
    box = outbox or Outbox()
    deadline = time.monotonic() + settings.timeout
    late = None
    if text is not None:
        message = fit(text)
        store_error = _put(box, message)
        if store_error:
            # Said once, at the end, if it still cannot be stored.
            log.info("%s; delivering the outbox first to make room", store_error)
            late = message
    try:
        result = _deliver_outbox(settings, box, deadline, late)
    except Exception as exc:  # a notifier must never break the job it reports on
        result = Delivery(queued=_count(box), error=redact(f"notification failed: {exc!r}"))
    if result.error:
        log.warning("Telegram: %s (%d message(s) kept in the outbox)", result.error, result.queued)
    return result


def _put(box: Outbox, text: str) -> str:
    """Store `text`: "" or why it could not be (the outbox is unchanged then)."""
    try:
        box.put(text)
    except OSError as exc:
        return f"could not store the notification in {box.directory}: {exc.strerror or exc}"
    return ""


def _count(box: Outbox) -> int:
    try:
        return len(box.pending())
    except OSError:
        return 0


def _deliver_outbox(
    settings: TelegramSettings, box: Outbox, deadline: float, late: str | None
) -> Delivery:
    """Deliver the outbox under its lock. `late`: a message that could not be stored before;
    stored once the outbox has been delivered, and then delivered too."""
    with box.locked(deadline) as held:
        if not held:
            busy = "another forge-tmux is delivering the outbox; left for it"
            store_error = _put(box, late) if late is not None else ""
            return Delivery(queued=_count(box), error="; ".join(filter(None, [busy, store_error])))
        box.drop_leftovers()
        result = _flush_pending(settings, box, deadline)
        if late is None:
            return result
        store_error = _put(box, late)
        if store_error or result.error:
            # Nothing newer goes out while older messages wait (`result.error`).
            error = "; ".join(filter(None, [result.error, store_error]))
            return result._replace(queued=_count(box), error=error)
        more = _flush_pending(settings, box, deadline)
        return more._replace(
            delivered=result.delivered + more.delivered,
            uncertain=result.uncertain + more.uncertain,
            rejected=result.rejected + more.rejected,
        )


def _flush_pending(settings: TelegramSettings, box: Outbox, deadline: float) -> Delivery:
    if not box.pending():
        return Delivery()
    import asyncio  # noqa: PLC0415 - only when there is something to send

    # The library logs some failures with a traceback; every failure is reported by `deliver`
    # in one line instead.
    logging.getLogger("telegram").setLevel(logging.CRITICAL)
    return asyncio.run(_flush(settings, box, deadline))


async def _flush(settings: TelegramSettings, box: Outbox, deadline: float) -> Delivery:
    from telegram import Bot  # noqa: PLC0415 - ~200 ms; only when a message is really sent
    from telegram.request import HTTPXRequest  # noqa: PLC0415

    counts = {"sent": 0, "uncertain": 0, "rejected": 0}
    request = HTTPXRequest(connection_pool_size=1)
    async with request:
        assert settings.token is not None  # noqa: S101 - checked by settings.ready
        # No `async with bot`: that calls getMe first, one more round trip that can fail.
        bot = Bot(
            settings.token,
            base_url=settings.api_url,
            request=request,
            get_updates_request=request,
        )
        while names := box.pending():
            for name in names:
                outcome = await _send_one(bot, settings, box.read(name), deadline)
                if outcome.kind == "sent":
                    box.remove(name)
                elif outcome.kind == "uncertain":
                    where = box.set_aside(name, UNCERTAIN)
                    log.warning(
                        "Telegram: %s; the message may have arrived, so it is not sent again "
                        "(kept in %s)",
                        outcome.reason,
                        where,
                    )
                elif outcome.kind == "rejected":
                    where = box.set_aside(name, REJECTED)
                    log.error("Telegram rejected a message (%s); kept in %s", outcome.reason, where)
                if outcome.kind != "stop":
                    counts[outcome.kind] += 1
                if outcome.kind in ("stop", "uncertain"):
                    # Order matters: nothing newer goes out ahead of a message still waiting.
                    reason = outcome.reason if outcome.kind == "stop" else ""
                    return Delivery(
                        counts["sent"],
                        len(box.pending()),
                        counts["uncertain"],
                        counts["rejected"],
                        redact(reason) or ("stopped after an uncertain delivery"),
                    )
    return Delivery(counts["sent"], 0, counts["uncertain"], counts["rejected"], "")


def _seconds(value: int | dt.timedelta) -> float:
    # RetryAfter.retry_after is an int or a timedelta, depending on PTB_TIMEDELTA.
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


async def _send_one(bot: Bot, settings: TelegramSettings, text: str, deadline: float) -> _Outcome:
    import asyncio  # noqa: PLC0415

    import httpx  # noqa: PLC0415
    from telegram import LinkPreviewOptions  # noqa: PLC0415
    from telegram.constants import ParseMode  # noqa: PLC0415
    from telegram.error import (  # noqa: PLC0415
        BadRequest,
        Forbidden,
        InvalidToken,
        NetworkError,
        RetryAfter,
        TelegramError,
        TimedOut,
    )

    # Transport errors after which the request certainly never reached the server.
    not_sent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    refused = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            return _Outcome("stop", "out of time; kept for the next run")
        per_request = min(remaining, REQUEST_TIMEOUT)
        try:
            await bot.send_message(
                chat_id=settings.chat_id or "",
                text=text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                read_timeout=per_request,
                write_timeout=per_request,
                connect_timeout=per_request,
                pool_timeout=per_request,
            )
            return _Outcome("sent")
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after)
            if time.monotonic() + wait >= deadline:
                return _Outcome("stop", f"rate limited (retry after {wait:g} s)")
            log.info("Telegram rate limit: waiting %g s as asked", wait)
            await asyncio.sleep(wait)
        except (InvalidToken, Forbidden) as exc:
            return _Outcome("stop", f"{type(exc).__name__}: {exc}")
        except BadRequest as exc:
            if "chat not found" in str(exc).lower():
                return _Outcome("stop", f"chat {settings.chat_id} not found")
            return _Outcome("rejected", str(exc))
        except NetworkError as exc:  # TimedOut is one; so is every transport error
            if isinstance(exc.__cause__, not_sent):
                if refused >= len(REFUSED_BACKOFF):
                    return _Outcome("stop", f"cannot reach Telegram: {exc}")
                pause = min(REFUSED_BACKOFF[refused], max(0.0, deadline - time.monotonic()))
                refused += 1
                await asyncio.sleep(pause)
                continue
            if exc.__cause__ is not None or isinstance(exc, TimedOut):
                return _Outcome("uncertain", f"no answer after sending ({exc})")
            # The server answered with an error status: it did not take the message.
            return _Outcome("stop", f"Telegram answered: {exc}")
        except TelegramError as exc:
            return _Outcome("stop", f"{type(exc).__name__}: {exc}")


def for_job(cfg: TelegramConfig) -> TelegramSettings | None:
    """Settings for a job that notifies on the side (the boot hook): a bad token file is logged,
    not raised, because the job must run anyway. None when notifications cannot be sent."""
    try:
        settings = resolve(cfg)
    except UsageError as exc:
        log.error("not notifying: %s", exc)  # noqa: TRY400 - one line; the job goes on
        return None
    return settings


def report(
    settings: TelegramSettings | None, text: str | None, *, asked: bool = False
) -> Delivery | None:
    """Tell Telegram about a job (None: only deliver the outbox). Never raises and never decides
    the job's exit code. None when Telegram is not configured; then nothing is queued either (no
    one would ever read it), and the log says so, as a warning when `--notify` asked for it."""
    if settings is None:
        return None
    if not settings.ready:
        if text is not None:
            log.log(
                logging.WARNING if asked else logging.INFO,
                "Telegram not configured (missing %s); not notifying",
                settings.missing(),
            )
        return None
    return deliver(settings, text)


def render_delivery(result: Delivery) -> str:
    """One line for a person: what went out and what waits. Why something waits is not
    repeated: `deliver` has logged it on stderr (issue 10: the same failure printed twice)."""
    parts = [f"delivered {result.delivered}"]
    if result.queued:
        parts.append(f"{result.queued} kept in the outbox")
    if result.uncertain:
        parts.append(f"{result.uncertain} uncertain (timed out, not resent)")
    if result.rejected:
        parts.append(f"{result.rejected} rejected")
    return "notify: " + ", ".join(parts)
