"""The browser teleop server: a Starlette ASGI app run by uvicorn in a background thread.

Routes: ``GET /?token=...`` (the page), ``GET /static/*`` (its script; public code, no state),
``WS /ws?token=...`` (the protocol of :mod:`.protocol`). The newest authenticated WebSocket is
the controller; older pages keep viewing. Each connection has one sender task that pushes the
newest frame (when it changed) and queued replies, so a slow or flooding client only ever delays
itself: the control loop exchanges state with the server through :class:`Hub` and
:class:`~.protocol.OperatorState` (short locks), never through the event loop.

This module imports starlette and uvicorn: :mod:`hardware.teleop.browser` imports it lazily in
``connect()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from hardware.teleop.base import DeviceError
from hardware.teleop.browser.auth import origin_ok, token_ok
from hardware.teleop.browser.protocol import (
    MAX_MESSAGE_BYTES,
    OperatorState,
    ProtocolError,
    RateLimiter,
    parse_message,
)

STATIC = Path(__file__).parent / "static"
#: transport limit: bigger frames close the connection (1009); up to it they are dropped+counted
WS_MAX_SIZE = 1 << 20
#: security headers of the page (the token is in its URL: never send it as a Referer)
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; style-src 'self' "
        "'unsafe-inline'; frame-ancestors 'none'"
    ),
}


class Hub:
    """What the control loop publishes to the pages: the newest frame message (JSON text)."""

    def __init__(self, state: OperatorState) -> None:
        self.state = state
        self.clients = 0
        self._lock = threading.Lock()
        self._frame: tuple[int, str] = (0, "")

    def publish(self, message: dict[str, Any]) -> None:
        """Replace the newest frame message (pages get it on their next send)."""
        text = json.dumps(message, separators=(",", ":"))
        with self._lock:
            self._frame = (self._frame[0] + 1, text)

    def frame(self) -> tuple[int, str]:
        """(version, JSON text) of the newest frame message."""
        with self._lock:
            return self._frame


def build_app(hub: Hub, token: str, tls: bool, rate: float = 200.0) -> Starlette:
    """The ASGI app; ``rate`` is the per-connection message budget per second (bursts of 50)."""
    ids = itertools.count(1)

    async def page(request: Request) -> Response:
        if not token_ok(request.query_params.get("token"), token):
            return PlainTextResponse("403: missing or wrong token", status_code=403)
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    async def socket(ws: WebSocket) -> None:
        if not token_ok(ws.query_params.get("token"), token) or not origin_ok(
            ws.headers.get("origin"), ws.headers.get("host"), tls
        ):
            await ws.close(code=1008)  # before accept: the handshake is refused with HTTP 403
            return
        await ws.accept()
        conn = next(ids)
        hub.state.claim(conn)
        hub.clients += 1
        outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=64)
        hello = {"type": "hello", "max_message_bytes": MAX_MESSAGE_BYTES}
        hello["timeout_ms"] = hub.state.timeout_s * 1000
        outbox.put_nowait(json.dumps(hello))
        sender = asyncio.create_task(_send_loop(ws, hub, conn, outbox))
        try:
            await _receive_loop(ws, hub.state, conn, outbox, RateLimiter(rate, 50))
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            hub.clients -= 1
            hub.state.release(conn)

    routes = [
        Route("/", page),
        WebSocketRoute("/ws", socket),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)


def _offer(outbox: asyncio.Queue, message: dict[str, Any]) -> None:
    # a client that does not read its replies: drop them rather than buffer
    with contextlib.suppress(asyncio.QueueFull):
        outbox.put_nowait(json.dumps(message))


async def _receive_loop(
    ws: WebSocket, state: OperatorState, conn: int, outbox: asyncio.Queue, limiter: RateLimiter
) -> None:
    errors = RateLimiter(10, 10)  # error replies per second: a flood is not echoed back
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        try:
            if not limiter.allow():
                raise ProtocolError("rate_limited", "too many messages; slow down")
            msg = parse_message(raw)
            if msg["type"] == "ping":
                _offer(outbox, {"type": "pong", "t": msg["t"], "server_t": time.time() * 1000})
                if state.controller != conn:
                    continue
            state.apply(conn, msg)
        except ProtocolError as exc:
            dropped = state.drop(exc.code)
            if errors.allow():
                error = {"type": "error", "code": exc.code, "message": str(exc)}
                _offer(outbox, {**error, "dropped": dropped})


async def _send_loop(ws: WebSocket, hub: Hub, conn: int, outbox: asyncio.Queue) -> None:
    sent = 0
    while True:
        try:
            text = await asyncio.wait_for(outbox.get(), timeout=0.02)
            await ws.send_text(text)
            continue
        except TimeoutError:
            pass
        version, text = hub.frame()
        if version != sent and text:
            sent = version
            role = "controller" if hub.state.controller == conn else "viewer"
            await ws.send_text(text[:-1] + f',"role":"{role}"}}')


class ServerThread:
    """uvicorn serving ``app`` in a daemon thread; :meth:`start` returns once it listens."""

    def __init__(
        self, app: Starlette, host: str, port: int, tls: tuple[str, str] | None = None
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws_max_size=WS_MAX_SIZE,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None
        self.port = port
        self.error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; a port in use or a bad certificate is a DeviceError."""
        self.thread = threading.Thread(target=self._run, name="teleop-browser", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                why = "timed out" if self.error is None else f"uvicorn exited: {self.error!r}"
                raise DeviceError(
                    f"device=browser could not serve on {self.server.config.host}:"
                    f"{self.server.config.port} ({why}; port in use? bad cert_file/key_file?): "
                    "pick another device.port= (0: any free port) or check the TLS files"
                )
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # reported by start(): the thread died
            self.error = exc

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None
