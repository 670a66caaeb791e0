"""The Telegram bot (`forge-tmux bot`): `/spawn`, `/health`, `/sweep`, `/help` by long polling.

Who is served: only the users in `bot.allowed_user_ids` (or FORGE_TMUX_BOT_ALLOWED_USERS), and,
when `bot.allowed_chat_ids` is set, only in those chats. Everyone else gets no answer at all and a
log line; an empty list serves nobody. One gate in handler group -1 decides this for every update
before any command handler sees it.

What is run: only commands from the config's `[spawn.profiles.NAME]` (or the user's login shell).
Chat text becomes, at most, a session name that the spawn harness makes safe, or the name of a
profile looked up in the config; it is never part of a command line.

Edited messages never re-run a command (`filters.UpdateType.MESSAGE`, and only `message` updates
are requested); commands queued while the bot was down are dropped at start-up and any command
older than `bot.max_command_age` is ignored. A forwarded message is someone else's text, whoever
forwards it: it never runs, and the user is told so (once a minute at most). Spawns and sweeps
run in a worker thread, one at a time, so the bot keeps answering `/health` while a session
starts.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import pwd
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol, TypeVar

from forge_tmux.config import BotConfig, Config, Profile
from forge_tmux.errors import UsageError
from forge_tmux.logs import NOTICE, log_events
from forge_tmux.notify import TelegramSettings, escape, fit
from forge_tmux.tmux import TmuxNotFound

if TYPE_CHECKING:
    from telegram import Update
    from telegram.ext import Application, ContextTypes

    from forge_tmux.sessions import Target

log = logging.getLogger(__name__)
_R = TypeVar("_R")

# Long-poll length asked of the Bot API; a SIGTERM cancels the poll, so this does not delay a stop.
POLL_TIMEOUT: Final = 10.0
HTTP_TIMEOUT: Final = 10.0
# getUpdates: the library adds the poll length to its read timeout. These bound the last,
# short getUpdates at a SIGTERM (it marks the updates read) when the network is black-holed.
GET_UPDATES_TIMEOUT: Final = 5.0
FORWARDED: Final = "forwarded messages are never run as commands: send the command yourself"


class Reply(NamedTuple):
    ok: bool
    text: str  # plain text; escaped when sent


class Actions(Protocol):
    """What the commands do. Blocking calls: the bot runs them in a worker thread."""

    def spawn(self, name: str, profile: Profile) -> Reply: ...

    def health(self) -> Reply: ...

    def sweep(self) -> Reply: ...


class SessionActions(Protocol):
    """`/list`, `/peek`, `/kill`. Blocking calls: the bot runs them in a worker thread."""

    def list(self) -> Reply: ...

    def peek(self, name: str, lines: int) -> Reply: ...

    def find(self, name: str) -> Target | Reply:
        """The running session NAME that may be killed, or the answer why not."""
        ...

    def kill(self, target: Target) -> Reply: ...


# How long a /kill question may be answered; later answers do nothing and say so.
CONFIRM_SECONDS: Final = 60.0
PEEK_LINES: Final = 20
MAX_MESSAGE: Final = 4096
# The `/` menu Telegram shows (set_my_commands at start).
MENU: Final = (
    ("spawn", "NAME [PROFILE]: start a session on its own socket"),
    ("list", "every tmux session"),
    ("peek", "NAME [N]: the last lines of a session"),
    ("kill", "NAME: end a session (asks first)"),
    ("health", "the socket-health row"),
    ("sweep", "remove stale sockets"),
    ("help", "what the bot does"),
)


class PendingKill(NamedTuple):
    user_id: int
    target: Target
    asked_at: float  # the bot's monotonic clock


def pre_block(title: str, text: str, limit: int = MAX_MESSAGE) -> str:
    """`title` and `text` in a `<pre>` block, escaped; when too long for one message the
    oldest lines go (the newest output is what a peek is for)."""
    head = f"{escape(title)}\n<pre>"
    lines = text.splitlines() or [""]
    body = escape("\n".join(lines))
    while len(head) + len(body) + len("</pre>") > limit and len(lines) > 1:
        lines = lines[len(lines) // 8 or 1 :]
        body = escape("\n".join(lines))
    room = limit - len(head) - len("</pre>")
    if len(body) > room:  # one enormous line: keep its end, never half an entity
        body = escape(lines[-1][-(room // 5) :])
    return f"{head}{body}</pre>"


def allowed_users(cfg: BotConfig, environ: Mapping[str, str] | None = None) -> frozenset[int]:
    """`FORGE_TMUX_BOT_ALLOWED_USERS` (comma-separated ids) over `bot.allowed_user_ids`."""
    env = os.environ if environ is None else environ
    raw = env.get("FORGE_TMUX_BOT_ALLOWED_USERS")
    if raw is None or not raw.strip():
        return frozenset(cfg.allowed_user_ids)
    ids = set()
    for part in raw.split(","):
        item = part.strip()
        if not item:
            continue
        try:
            ids.add(int(item))
        except ValueError:
            raise UsageError(
                f"FORGE_TMUX_BOT_ALLOWED_USERS must be comma-separated user ids, not {item!r}"
            ) from None
    return frozenset(ids)


def login_shell() -> str:
    """The default profile's command when the config names none: the user's login shell."""
    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        shell = ""
    return shell or os.environ.get("SHELL") or "/bin/sh"


def pick_profile(cfg: Config, wanted: str | None) -> tuple[str, Profile] | str:
    """The profile `/spawn NAME [PROFILE]` asks for, or why there is none (a reply text)."""
    profiles = cfg.spawn.profiles
    if wanted is None:
        if cfg.spawn.default_profile is not None:
            return cfg.spawn.default_profile, profiles[cfg.spawn.default_profile]
        return "shell", Profile(command=(login_shell(),))
    if wanted in profiles:
        return wanted, profiles[wanted]
    known = ", ".join(sorted(profiles)) or "none configured"
    return f"unknown profile {wanted!r} (known: {known})"


class RateLimit:
    """At most `per_minute` events per user in any 60 seconds (a sliding window)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[int, collections.deque[float]] = {}
        self._told: set[int] = set()  # users refused since they were last allowed

    def allow(self, user_id: int) -> bool:
        now = self._clock()
        window = self._seen.setdefault(user_id, collections.deque())
        while window and now - window[0] >= 60:
            window.popleft()
        if len(window) >= self.per_minute:
            return False
        window.append(now)
        self._told.discard(user_id)
        return True

    def first_refusal(self, user_id: int) -> bool:
        """After `allow` said no: is this the first refusal until the user is allowed again?
        Only that one is answered; answering a flood would run into Telegram's own 429."""
        if user_id in self._told:
            return False
        self._told.add(user_id)
        return True


class OncePerMinute:
    """Whether a notice is due for a user: at most one in any 60 seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[int, float] = {}

    def due(self, user_id: int) -> bool:
        now = self._clock()
        last = self._last.get(user_id)
        if last is not None and now - last < 60:
            return False
        self._last[user_id] = now
        return True


def help_text(cfg: Config) -> str:
    profiles = ", ".join(sorted(cfg.spawn.profiles)) or "none (the login shell)"
    default = cfg.spawn.default_profile or "the login shell"
    return (
        "/spawn NAME [PROFILE]: start a tmux session NAME on its own socket\n"
        f"  profiles: {profiles}; default: {default}\n"
        "/health: the tmux socket-health row\n"
        "/sweep: remove stale tmux sockets and say what was removed\n"
        "/list: every tmux session; /peek NAME [N]: its last N lines (20)\n"
        "/kill NAME: end a session (asks first; only the asker can confirm, for 60 s)\n"
        "/help: this text"
    )


class Bot:
    """The handlers and their state; `build()` wires them into a python-telegram-bot
    Application."""

    def __init__(
        self,
        cfg: Config,
        settings: TelegramSettings,
        actions: Actions,
        users: frozenset[int],
        sessions: SessionActions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.settings = settings
        self.actions = actions
        self.users = users
        self.sessions = sessions
        self.clock = clock
        self.pending: dict[str, PendingKill] = {}
        self.chats = frozenset(cfg.bot.allowed_chat_ids)
        self.rate = RateLimit(cfg.bot.spawns_per_minute)
        self.forward_notice = OncePerMinute()
        self._work = asyncio.Lock()

    # Application has six type parameters, all the library defaults here.
    def build(self) -> Application:  # type: ignore[type-arg]
        from telegram import Update  # noqa: PLC0415
        from telegram.ext import (  # noqa: PLC0415 - ~200 ms; the bot only
            Application,
            CommandHandler,
            TypeHandler,
            filters,
        )

        assert self.settings.token is not None  # noqa: S101 - checked by the caller
        app = (
            Application.builder()
            .token(self.settings.token)
            .base_url(self.settings.api_url)
            .connect_timeout(HTTP_TIMEOUT)
            .read_timeout(HTTP_TIMEOUT)
            .write_timeout(HTTP_TIMEOUT)
            .get_updates_connect_timeout(GET_UPDATES_TIMEOUT)
            .get_updates_read_timeout(GET_UPDATES_TIMEOUT)
            .get_updates_write_timeout(GET_UPDATES_TIMEOUT)
            .build()
        )
        app.add_handler(TypeHandler(Update, self.gate), group=-1)
        fresh = filters.UpdateType.MESSAGE
        app.add_handler(CommandHandler("spawn", self.on_spawn, filters=fresh, block=False))
        app.add_handler(CommandHandler("sweep", self.on_sweep, filters=fresh, block=False))
        app.add_handler(CommandHandler("health", self.on_health, filters=fresh, block=False))
        app.add_handler(CommandHandler(["help", "start"], self.on_help, filters=fresh))
        self._add_session_handlers(app)
        app.add_error_handler(self.on_error)
        return app

    def _add_session_handlers(self, app: Application) -> None:  # type: ignore[type-arg]
        from telegram.ext import CallbackQueryHandler, CommandHandler, filters  # noqa: PLC0415

        fresh = filters.UpdateType.MESSAGE
        app.add_handler(CommandHandler("list", self.on_list, filters=fresh, block=False))
        app.add_handler(CommandHandler("peek", self.on_peek, filters=fresh, block=False))
        app.add_handler(CommandHandler("kill", self.on_kill, filters=fresh, block=False))
        app.add_handler(CallbackQueryHandler(self.on_kill_answer, pattern=r"^kill:", block=False))
        app.post_init = self.register_commands

    async def register_commands(self, app: Application) -> None:  # type: ignore[type-arg]
        """Telegram's `/` menu lists the commands; failing to set it is only a warning."""
        from telegram import BotCommand  # noqa: PLC0415
        from telegram.error import TelegramError  # noqa: PLC0415

        try:
            await app.bot.set_my_commands([BotCommand(name, text) for name, text in MENU])
        except TelegramError as exc:
            log.warning("could not set the bot's command menu: %s", exc)

    # --- the gate -----------------------------------------------------------------------------

    def admits(self, user_id: int | None, chat_id: int | None) -> bool:
        if user_id is None or user_id not in self.users:
            return False
        return not self.chats or chat_id in self.chats

    async def gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Stop every update that is not a fresh message from an allowed user in an allowed
        chat, before any command handler sees it. Strangers get no answer, only a log line."""
        from telegram.ext import ApplicationHandlerStop  # noqa: PLC0415

        user = update.effective_user
        chat = update.effective_chat
        user_id = user.id if user else None
        chat_id = chat.id if chat else None
        if not self.admits(user_id, chat_id):
            log.warning("ignored an update from user %s in chat %s: not allowed", user_id, chat_id)
            raise ApplicationHandlerStop
        if update.callback_query is not None:
            return  # a button pressed under a /kill question: on_kill_answer judges it
        message = update.message
        if message is None:
            log.info("ignored a non-message update from user %s (edits never re-run)", user_id)
            raise ApplicationHandlerStop
        age = time.time() - message.date.timestamp()
        if age > self.cfg.bot.max_command_age:
            log.warning(
                "ignored %r from user %s: %.0f s old (bot.max_command_age = %g)",
                (message.text or "")[:40],
                user_id,
                age,
                self.cfg.bot.max_command_age,
            )
            raise ApplicationHandlerStop
        if message.forward_origin is not None:
            # The gate knows who forwarded, not who wrote: a stranger's /spawn must not run.
            log.warning("ignored a forwarded message from user %s: never a command", user_id)
            if (message.text or "").startswith("/") and self.forward_notice.due(user_id or 0):
                await self._answer(update, FORWARDED)
            raise ApplicationHandlerStop

    # --- commands -----------------------------------------------------------------------------

    async def on_spawn(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if not 1 <= len(args) <= 2:
            await self._answer(update, "usage: /spawn NAME [PROFILE]")
            return
        picked = pick_profile(self.cfg, args[1] if len(args) == 2 else None)
        if isinstance(picked, str):
            await self._answer(update, picked)
            return
        profile_name, profile = picked
        user_id = update.effective_user.id if update.effective_user else 0
        if not self.rate.allow(user_id):
            if self.rate.first_refusal(user_id):
                per_minute = self.cfg.bot.spawns_per_minute
                await self._answer(
                    update,
                    f"rate limit: at most {per_minute} spawns a minute; "
                    "more /spawn commands in this minute are ignored without an answer",
                )
            else:
                log.info("user %s: /spawn %r refused quietly (rate limit)", user_id, args[0])
            return
        log.log(NOTICE, "user %s: /spawn %r with profile %s", user_id, args[0], profile_name)
        async with self._work:
            reply = await self._off_loop("/spawn", self.actions.spawn, args[0], profile)
        await self._answer(update, reply.text)

    async def on_sweep(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        async with self._work:
            reply = await self._off_loop("/sweep", self.actions.sweep)
        await self._answer(update, reply.text)

    async def on_health(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        reply = await self._off_loop("/health", self.actions.health)
        await self._answer(update, reply.text)

    async def _off_loop(self, what: str, action: Callable[..., _R], *args: object) -> _R | Reply:
        """Run a blocking action in a worker thread; a bug in it is an answer, not silence."""
        try:
            return await asyncio.to_thread(action, *args)
        except Exception:
            log.exception("%s failed", what)
            return Reply(False, f"{what} failed: internal error (see the bot's log)")

    # --- sessions: /list, /peek, /kill ----------------------------------------------------------

    async def on_list(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if self.sessions is None:
            await self._answer(update, "/list is not available")
            return
        from telegram.constants import ParseMode  # noqa: PLC0415

        reply = await self._off_loop("/list", self.sessions.list)
        if not reply.ok:
            await self._answer(update, reply.text)
        elif update.effective_message is not None:  # columns: monospace keeps them aligned
            text = pre_block("tmux sessions", reply.text)
            await update.effective_message.reply_text(text, parse_mode=ParseMode.HTML)

    async def on_peek(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        from telegram.constants import ParseMode  # noqa: PLC0415

        args = context.args or []
        lines = PEEK_LINES
        if len(args) == 2 and args[1].isdigit() and 1 <= int(args[1]) <= 1000:
            lines = int(args[1])
        elif len(args) != 1:
            await self._answer(update, "usage: /peek NAME [N] (N from 1 to 1000, default 20)")
            return
        if self.sessions is None:
            await self._answer(update, "/peek is not available")
            return
        reply = await self._off_loop("/peek", self.sessions.peek, args[0], lines)
        if not reply.ok:
            await self._answer(update, reply.text)
            return
        title = f"{args[0]}: last {lines} lines"
        if update.effective_message is not None:
            await update.effective_message.reply_text(
                pre_block(title, reply.text), parse_mode=ParseMode.HTML
            )

    async def on_kill(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Ask first, with buttons: only the asker can confirm, within CONFIRM_SECONDS."""
        import secrets  # noqa: PLC0415

        from telegram import InlineKeyboardButton, InlineKeyboardMarkup  # noqa: PLC0415
        from telegram.constants import ParseMode  # noqa: PLC0415

        args = context.args or []
        if len(args) != 1:
            await self._answer(update, "usage: /kill NAME")
            return
        if self.sessions is None:
            await self._answer(update, "/kill is not available")
            return
        found = await self._off_loop("/kill", self.sessions.find, args[0])
        if isinstance(found, Reply):
            await self._answer(update, found.text)
            return
        user_id = update.effective_user.id if update.effective_user else 0
        self._forget_expired()
        token = secrets.token_hex(8)
        self.pending[token] = PendingKill(user_id, found, self.clock())
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Kill", callback_data=f"kill:yes:{token}"),
                    InlineKeyboardButton("Cancel", callback_data=f"kill:no:{token}"),
                ]
            ]
        )
        question = f"Kill {found.where()}? (answer within {CONFIRM_SECONDS:g} s)"
        if update.effective_message is not None:
            await update.effective_message.reply_text(
                escape(question), parse_mode=ParseMode.HTML, reply_markup=keyboard
            )

    def _forget_expired(self) -> None:
        now = self.clock()
        for token, ask in list(self.pending.items()):
            if now - ask.asked_at > CONFIRM_SECONDS * 10:  # long gone: keep the table small
                del self.pending[token]

    async def on_kill_answer(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        _, choice, token = (query.data or "kill::").split(":", 2)
        ask = self.pending.get(token)
        user_id = query.from_user.id if query.from_user else None
        if ask is None or self.clock() - ask.asked_at > CONFIRM_SECONDS:
            self.pending.pop(token, None)
            await query.answer("this question has expired; nothing was done")
            await query.edit_message_text("expired: nothing was done (ask again with /kill)")
            return
        if user_id != ask.user_id:
            log.warning("user %s pressed a /kill button of user %s: ignored", user_id, ask.user_id)
            await query.answer("only the user who asked can answer", show_alert=True)
            return
        del self.pending[token]
        if choice != "yes":
            await query.answer("cancelled")
            await query.edit_message_text(f"cancelled: {ask.target.where()} keeps running")
            return
        log.log(NOTICE, "user %s: /kill %s confirmed", user_id, ask.target.where())
        await query.answer("killing")
        assert self.sessions is not None  # noqa: S101 - a question exists only with sessions
        async with self._work:
            reply = await self._off_loop("/kill", self.sessions.kill, ask.target)
        await query.edit_message_text(reply.text)

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer(update, help_text(self.cfg))

    async def _answer(self, update: Update, text: str) -> None:
        from telegram.constants import ParseMode  # noqa: PLC0415

        if update.effective_message is not None:
            await update.effective_message.reply_text(fit(escape(text)), parse_mode=ParseMode.HTML)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Network trouble is a log line, never the end of the bot; anything else is a bug
        with its traceback (the token is redacted by the log formatter)."""
        from telegram.error import Conflict, NetworkError  # noqa: PLC0415

        error = context.error
        if isinstance(error, Conflict):
            log.error("Telegram: another bot is polling with this token (%s)", error)
        elif isinstance(error, NetworkError):
            log.warning("Telegram unreachable, retrying: %s", error)
        else:
            log.error("handler failed", exc_info=error)


class NetworkTroubleOneLine(logging.Filter):
    """python-telegram-bot logs some network failures (the last getUpdates at a stop, a failed
    retry loop) and a rejected token with a full traceback; the journal gets one line instead
    (the token itself is redacted by the log formatter either way)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from telegram.error import InvalidToken, NetworkError  # noqa: PLC0415

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, NetworkError | InvalidToken):
            record.msg = f"{record.getMessage().splitlines()[0]} ({type(error).__name__}: {error})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def run(cfg: Config, settings: TelegramSettings, actions: Actions, users: frozenset[int]) -> int:
    """Poll until SIGTERM/SIGINT; 0 after a clean stop, 2 when Telegram rejects the token."""
    from telegram import Update  # noqa: PLC0415
    from telegram.error import InvalidToken  # noqa: PLC0415

    if not users:
        log.warning("bot.allowed_user_ids is empty: the bot will answer nobody")
    sessions = actions if isinstance(actions, FleetActions) else None
    app = Bot(cfg, settings, actions, users, sessions).build()
    for name in ("telegram.ext", "telegram.ext.Updater", "telegram.ext.Application"):
        logging.getLogger(name).addFilter(NetworkTroubleOneLine())
    log.log(NOTICE, "bot polling %s for %d allowed user(s)", _host(settings.api_url), len(users))
    try:
        app.run_polling(
            timeout=int(POLL_TIMEOUT),
            bootstrap_retries=-1,  # started before the network: wait for it, never die
            drop_pending_updates=True,  # commands queued while the bot was down never run
            allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY],
        )
    except InvalidToken:
        log.error("Telegram rejected the bot token; check FORGE_TMUX_TELEGRAM_TOKEN")  # noqa: TRY400
        return 2
    log.log(NOTICE, "bot stopped")
    return 0


def _host(url: str) -> str:
    """The Bot API host for a log line (never the path: a token might be written there)."""
    return url.split("//", 1)[-1].split("/", 1)[0]


class FleetActions:
    """The real fleet: the spawn harness, the health check and the janitor."""

    def __init__(self, cfg: Config, dirs: list[str]) -> None:
        self.cfg = cfg
        self.dirs = dirs

    def spawn(self, name: str, profile: Profile) -> Reply:
        from forge_tmux import spawn as harness  # noqa: PLC0415
        from forge_tmux.notices import spawn_text  # noqa: PLC0415

        try:
            request = harness.request_for(
                self.cfg,
                name,
                profile.command,
                wait_for=profile.wait_for,
                profile=self._profile_name(profile),
            )
        except UsageError as exc:
            return Reply(False, f"cannot spawn {name}: {exc}")
        result = harness.spawn_for(self.cfg, request)
        return Reply(result.ok, spawn_text(result))

    def _profile_name(self, profile: Profile) -> str | None:
        """The configured name of `profile` (kept in the saved snapshot); None for the shell."""
        found = [n for n, p in self.cfg.spawn.profiles.items() if p == profile]
        return found[0] if found else None

    def health(self) -> Reply:
        from forge_tmux import health  # noqa: PLC0415

        result = health.collect(
            self.dirs, timeout=self.cfg.health.timeout, parallel=self.cfg.health.parallel
        )
        return Reply(True, health.render_row(result))

    def sweep(self) -> Reply:
        from forge_tmux import sweep as janitor  # noqa: PLC0415
        from forge_tmux.notices import sweep_details, sweep_line  # noqa: PLC0415

        result = janitor.sweep(
            self.dirs, timeout=self.cfg.sweep.timeout, protected=self.cfg.protected_sockets
        )
        log_events(log, janitor.log_events(result))
        return Reply(result.ok, "\n".join([sweep_line(result), *sweep_details(result)]))

    # --- sessions -----------------------------------------------------------------------------

    def list(self) -> Reply:
        from forge_tmux import sessions  # noqa: PLC0415

        listing = sessions.list_sessions(self.dirs, timeout=self.cfg.health.timeout)
        return Reply(True, sessions.render_listing(listing))

    def _resolve(self, name: str) -> Target | Reply:
        from forge_tmux import sessions  # noqa: PLC0415

        try:
            return sessions.resolve(name, self.dirs, timeout=self.cfg.health.timeout)
        except (sessions.NotRunning, sessions.Refused, UsageError, TmuxNotFound) as exc:
            return Reply(False, str(exc))

    def peek(self, name: str, lines: int) -> Reply:
        from forge_tmux import sessions  # noqa: PLC0415

        found = self._resolve(name)
        if isinstance(found, Reply):
            return found
        try:
            return Reply(True, sessions.peek(found, lines, timeout=self.cfg.health.timeout))
        except (sessions.NotRunning, TmuxNotFound) as exc:
            return Reply(False, str(exc))

    def find(self, name: str) -> Target | Reply:
        from forge_tmux import sessions  # noqa: PLC0415

        found = self._resolve(name)
        if not isinstance(found, Reply) and sessions.protected(found, self.cfg.protected_sockets):
            return Reply(False, f"socket {found.socket_name} is protected; never killed")
        return found

    def kill(self, target: Target) -> Reply:
        from forge_tmux import sessions, snapshot  # noqa: PLC0415

        try:
            result = sessions.kill(
                target,
                protected_sockets=self.cfg.protected_sockets,
                timeout=self.cfg.health.timeout,
                sweep_timeout=self.cfg.sweep.timeout,
            )
        except (sessions.NotRunning, sessions.Refused, TmuxNotFound) as exc:
            return Reply(False, str(exc))
        snapshot.forget(target.socket_name, target.session)
        return Reply(True, result.message())
