"""The browser teleop WebSocket protocol: strict validation and the shared operator state.

Client -> server messages are JSON objects of one of these types (no other keys allowed)::

    {"type": "input", "seq": int, "t": ms, "motion": [x, y, z], "gripper": g, "intervene": bool}
    {"type": "event", "name": "success" | "failure" | "rerecord" | "start" | "stop"}
    {"type": "heartbeat", "t": ms}
    {"type": "ping", "t": ms}

``motion`` components and ``gripper`` are in [-1, 1]; ``t`` is the browser's wall clock in
milliseconds (``performance.timeOrigin + performance.now()``), ``seq`` increases per connection.
Anything else (not JSON, not an object, an unknown type or key, a wrong type, a value out of
range, more than :data:`MAX_MESSAGE_BYTES`) is a :class:`ProtocolError`: the message is dropped,
counted in :attr:`OperatorState.dropped` and answered with ``{"type": "error", ...}``.

Server -> client: ``{"type": "hello", ...}`` (role, limits), ``{"type": "frame", "images":
{camera: data-URL}, "status": {...}}``, ``{"type": "pong", "t": ms}``, ``{"type": "reset",
"gripper": g}`` and ``{"type": "error", "code": str, "message": str}``.

:class:`OperatorState` is the thread-safe meeting point of the server thread (writes inputs) and
the control loop (reads them): every method holds one lock for a few microseconds, so the
control loop is never blocked by the network.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

#: largest accepted client message (bytes of the text frame)
MAX_MESSAGE_BYTES = 4096
#: one-shot operator events
EVENTS = ("success", "failure", "rerecord", "start", "stop")
_FIELDS = {
    "input": {"type", "seq", "t", "motion", "gripper", "intervene"},
    "event": {"type", "name"},
    "heartbeat": {"type", "t"},
    "ping": {"type", "t"},
}
_REQUIRED = {
    "input": _FIELDS["input"],
    "event": {"type", "name"},
    "heartbeat": {"type"},
    "ping": {"type", "t"},
}


class ProtocolError(ValueError):
    """A client message that is dropped; ``code`` is its counter's name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError("wrong_type", f"{name} must be a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise ProtocolError("out_of_range", f"{name} must be in [{low}, {high}]")
    return float(value)


def parse_message(raw: str | bytes) -> dict[str, Any]:
    """Validate one client message; returns the normalised message or raises ProtocolError."""
    if isinstance(raw, bytes):
        raise ProtocolError("binary", "binary messages are not accepted; send JSON text")
    if len(raw) > MAX_MESSAGE_BYTES or len(raw.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "not valid JSON") from None
    if not isinstance(msg, dict):
        raise ProtocolError("wrong_type", "a message is a JSON object")
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ProtocolError("unknown_type", f"type must be one of {sorted(_FIELDS)}")
    keys = set(msg)
    if keys - _FIELDS[kind]:
        raise ProtocolError("unknown_field", f"unknown field(s) {sorted(keys - _FIELDS[kind])}")
    if _REQUIRED[kind] - keys:
        raise ProtocolError("missing_field", f"missing field(s) {sorted(_REQUIRED[kind] - keys)}")
    out: dict[str, Any] = {"type": kind}
    if "t" in msg:
        out["t"] = _number(msg["t"], "t", 0.0, 1e15)
    if kind == "input":
        seq = msg["seq"]
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise ProtocolError("wrong_type", "seq must be an integer")
        if not 0 <= seq < 2**53:
            raise ProtocolError("out_of_range", "seq must be in [0, 2**53)")
        motion = msg["motion"]
        if not isinstance(motion, list) or len(motion) != 3:
            raise ProtocolError("wrong_type", "motion must be a list of 3 numbers")
        out["seq"] = seq
        out["motion"] = [_number(v, "motion", -1.0, 1.0) for v in motion]
        out["gripper"] = _number(msg["gripper"], "gripper", -1.0, 1.0)
        if not isinstance(msg["intervene"], bool):
            raise ProtocolError("wrong_type", "intervene must be true or false")
        out["intervene"] = msg["intervene"]
    elif kind == "event":
        if msg["name"] not in EVENTS:
            raise ProtocolError("unknown_event", f"name must be one of {list(EVENTS)}")
        out["name"] = msg["name"]
    return out


class RateLimiter:
    """Token bucket: ``rate`` messages per second with bursts of ``burst``."""

    def __init__(self, rate: float, burst: float, clock=time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.last = burst, clock()

    def allow(self) -> bool:
        """Take one token; False when the bucket is empty (drop the message)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass
class Snapshot:
    """The operator's state as the control loop sees it at one tick."""

    motion: tuple[float, float, float]
    gripper: float | None
    intervene: bool
    events: set[str]
    seq: int
    input_t_ms: float | None
    received_s: float | None
    """``time.time()`` when the newest input arrived (None: none yet)."""
    live: bool
    """An input or heartbeat arrived within the dead-man timeout and a controller is connected."""


@dataclass
class OperatorState:
    """Latest operator input, one-shot events and counters, shared between threads."""

    timeout_s: float = 0.3
    clock: Any = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    motion: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gripper: float | None = None
    intervene: bool = False
    seq: int = -1
    input_t_ms: float | None = None
    received_s: float | None = None
    last_alive: float = -math.inf
    controller: int | None = None
    events: set[str] = field(default_factory=set)
    accepted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, code: str) -> int:
        """Count one dropped message; returns the total dropped."""
        with self._lock:
            self.dropped[code] = self.dropped.get(code, 0) + 1
            return sum(self.dropped.values())

    def claim(self, conn: int) -> None:
        """Connection ``conn`` becomes the controller (the newest page takes over)."""
        with self._lock:
            self.controller, self.intervene, self.motion = conn, False, (0.0, 0.0, 0.0)
            self.seq = -1

    def release(self, conn: int) -> None:
        """Connection ``conn`` closed: if it was the controller, motion stops now."""
        with self._lock:
            if self.controller == conn:
                self.controller, self.intervene, self.motion = None, False, (0.0, 0.0, 0.0)
                self.last_alive = -math.inf

    def apply(self, conn: int, msg: dict[str, Any]) -> None:
        """Apply a validated message from connection ``conn``; raises ProtocolError if refused."""
        with self._lock:
            if conn != self.controller:
                raise ProtocolError("not_controller", "another page has taken control")
            kind = msg["type"]
            if kind == "input":
                if msg["seq"] <= self.seq:
                    raise ProtocolError("stale_seq", "seq must increase")
                self.seq = msg["seq"]
                self.motion = tuple(msg["motion"])
                self.gripper, self.intervene = msg["gripper"], msg["intervene"]
                self.input_t_ms, self.received_s = msg.get("t"), time.time()
            elif kind == "event":
                self.events.add(msg["name"])
            self.last_alive = self.clock()
            self.accepted += 1

    def snapshot(self) -> Snapshot:
        """The state for this tick; the one-shot events are taken (cleared)."""
        with self._lock:
            events, self.events = self.events, set()
            live = self.controller is not None and self.clock() - self.last_alive <= self.timeout_s
            return Snapshot(
                self.motion,
                self.gripper,
                self.intervene,
                events,
                self.seq,
                self.input_t_ms,
                self.received_s,
                live,
            )

    def counters(self) -> dict[str, Any]:
        """Accepted and dropped message counts."""
        with self._lock:
            return {"accepted": self.accepted, "dropped": dict(self.dropped)}
