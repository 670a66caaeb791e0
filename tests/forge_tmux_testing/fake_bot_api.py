"""A fake Telegram Bot API on 127.0.0.1 for the real python-telegram-bot to talk to.

Runs in a thread of the test process on a random port (or a given one, to come up late). Speaks
what the library uses: getMe, deleteWebhook, sendMessage, getUpdates (a long poll honouring
`offset` and `timeout`), close/logOut as no-ops. Failures are scripted per method: a 429 with
`retry_after`, any error status, a slow answer (to cause read timeouts). A refused connection is
simply the server not running: `FakeBotAPI.free_port()` gives a port nobody listens on.
Every request is recorded, so tests can check what reached "Telegram" and in which order.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

TOKEN = "123456789:AAHfakeTokenForTestsOnly_abcdefghijkl"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "forge", "username": "forge_test_bot"}


@dataclass
class Call:
    method: str
    params: dict[str, str]
    token: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class Script:
    """One scripted answer: `status`/`body` instead of the normal answer, after `delay` s."""

    status: int = 200
    body: dict[str, Any] | None = None
    delay: float = 0.0


class FakeBotAPI:
    def __init__(self, port: int = 0, token: str = TOKEN) -> None:
        self.token = token
        self.port = port
        self.calls: list[Call] = []
        self.updates: list[dict[str, Any]] = []
        self.confirmed_offset = 0
        self._sent: list[str] = []
        self.dropped: list[dict[str, Any]] = []  # pending updates dropped at the bot's start
        self._scripts: dict[str, list[Script]] = {}
        self._next_update = 1
        self._next_message = 1000
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        # Open client connections: stop() cuts them, as a real outage would (keep-alive
        # connections otherwise outlive the listening socket).
        self._connections: set[socket.socket] = set()

    # --- life cycle ---------------------------------------------------------------------------

    @staticmethod
    def free_port() -> int:
        """A port on 127.0.0.1 where nothing listens (connections are refused)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> FakeBotAPI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with fake._cond:
                    fake._connections.add(self.connection)

            def finish(self) -> None:
                with fake._cond:
                    fake._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._closing = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._cond:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeBotAPI:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting ----------------------------------------------------------------------------

    def script(self, method: str, *answers: Script) -> None:
        """The next calls of `method` get these answers, in order, then normal ones again."""
        with self._cond:
            self._scripts.setdefault(method, []).extend(answers)

    def rate_limit(self, method: str, retry_after: int, times: int = 1) -> None:
        body = {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        }
        self.script(method, *[Script(429, body)] * times)

    def slow(self, method: str, delay: float, times: int = 1) -> None:
        """Answer normally, but only after `delay` seconds (the request *is* processed)."""
        self.script(method, *[Script(200, None, delay)] * times)

    def add_command(self, text: str, **kwargs: Any) -> int:
        """Queue an update for getUpdates (see `command_update`); returns its id."""
        return self._queue(lambda update_id: command_update(text, update_id=update_id, **kwargs))

    def add_callback(self, data: str, **kwargs: Any) -> int:
        """Queue a pressed inline button (see `callback_update`); returns its id."""
        return self._queue(lambda update_id: callback_update(data, update_id=update_id, **kwargs))

    def _queue(self, make: Any) -> int:
        with self._cond:
            update_id = self._next_update
            self._next_update += 1
            self.updates.append(make(update_id))
            self._cond.notify_all()
        return update_id

    # --- what happened ------------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def messages(self) -> list[str]:
        """Texts of every sendMessage the fake accepted (answered 200), in order."""
        with self._cond:
            return list(self._sent)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("fake Bot API: condition not met in time")
                self._cond.wait(min(left, 0.1))

    def wait_consumed(self, update_id: int, timeout: float = 10.0) -> None:
        """Wait until the bot confirmed `update_id` (asked for a higher offset)."""
        self.wait_for(lambda: self.confirmed_offset > update_id, timeout)

    def wait_messages(self, count: int, timeout: float = 10.0) -> list[str]:
        self.wait_for(lambda: len(self._sent) >= count, timeout)
        return self.messages()

    # --- serving ------------------------------------------------------------------------------

    def _new_message_id(self) -> int:
        self._next_message += 1
        return self._next_message

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        path = request.path.split("?", 1)[0]
        token, _, method = path.removeprefix("/bot").partition("/")
        with self._cond:
            self.calls.append(Call(method, params, token))
            scripted = self._scripts.get(method, [])
            answer = scripted.pop(0) if scripted else None
            self._cond.notify_all()
        if token != self.token:
            self._reply(
                request, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            )
            return
        if answer is not None and answer.delay:
            time.sleep(answer.delay)
        if answer is not None and answer.body is not None:
            self._reply(request, answer.status, answer.body)
            return
        result = self._result(method, params)
        self._reply(request, 200, {"ok": True, "result": result})

    def _result(self, method: str, params: dict[str, str]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method == "deleteWebhook" and params.get("drop_pending_updates") == "true":
            with self._cond:
                self.dropped.extend(self.updates)
                self.updates.clear()
            return True
        if method in ("deleteWebhook", "close", "logOut", "setMyCommands"):
            return True
        if method == "sendMessage":
            with self._cond:
                self._sent.append(params.get("text", ""))
                message_id = self._new_message_id()
                self._cond.notify_all()
            raw_chat = params.get("chat_id", "0")
            chat_id = int(raw_chat) if raw_chat.lstrip("-").isdigit() else 0
            return {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": BOT_USER,
                "text": params.get("text", ""),
            }
        if method == "getUpdates":
            return self._get_updates(params)
        return True

    def _get_updates(self, params: dict[str, str]) -> list[dict[str, Any]]:
        offset = int(params.get("offset", "0") or 0)
        timeout = float(params.get("timeout", "0") or 0)
        deadline = time.monotonic() + min(timeout, 5.0)
        with self._cond:
            self.confirmed_offset = max(self.confirmed_offset, offset)
            self._cond.notify_all()
            while True:
                ready = [u for u in self.updates if u["update_id"] >= offset]
                left = deadline - time.monotonic()
                if ready or left <= 0 or self._closing:
                    return ready
                self._cond.wait(min(left, 0.1))

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        with contextlib.suppress(OSError):
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)


_message_ids = iter(range(1, 1 << 30))


def command_update(
    text: str,
    *,
    update_id: int = 1,
    user_id: int = 1111,
    chat_id: int | None = None,
    edited: bool = False,
    age: float = 0.0,
) -> dict[str, Any]:
    """An update with a message whose first word is a bot command (with its entity, or the
    library would not see a command), sent by `user_id`, `age` seconds ago."""
    command = text.split(maxsplit=1)[0]
    message: dict[str, Any] = {
        "message_id": next(_message_ids),
        "date": int(time.time() - age),
        "chat": {"id": chat_id or user_id, "type": "private"},
        "from": {"id": user_id, "is_bot": False, "first_name": "u"},
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
    }
    if edited:
        message["edit_date"] = int(time.time())
    return {"update_id": update_id, ("edited_message" if edited else "message"): message}


_callback_ids = iter(range(1, 1 << 30))


def callback_update(
    data: str, *, update_id: int = 1, user_id: int = 1111, message_id: int = 1, chat_id: int = 0
) -> dict[str, Any]:
    """An update for a pressed inline-keyboard button with `data`, pressed by `user_id`, under
    the bot's message `message_id`."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": str(next(_callback_ids)),
            "from": {"id": user_id, "is_bot": False, "first_name": "u"},
            "chat_instance": "1",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id or user_id, "type": "private"},
                "from": BOT_USER,
                "text": "question",
            },
        },
    }
