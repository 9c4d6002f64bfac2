"""``device=browser``: teleoperate from a web page (any browser, local or over the network).

``connect()`` starts an HTTP/WebSocket server (Starlette + uvicorn in a background thread) and
prints a URL with a one-time token; the page shows the task's live camera views and status and
sends the operator's input over a WebSocket (protocol: :mod:`.protocol`; access rules:
:mod:`.auth`).

Input on the page (see ``static/teleop.js``):

- **Dead-man switch**: motion and gripper commands act only while the *Hold to intervene* button
  is held (mouse/touch), Space is held, or the gamepad's right bumper/trigger is held. Released,
  the page closed, or no message for ``timeout_ms`` (300 ms; the page sends every 50 ms) ->
  zero motion and ``intervene=False``.
- **Keyboard**: W/S or Up/Down +x/-x, A/D or Left/Right +y/-y, R/F +z/-z, G toggles the gripper,
  Enter success, Backspace failure, Z re-record, N start, Q stop.
- **Gamepad** (Gamepad API): left stick x/y, right stick z, A toggles the gripper.
- **On-screen joystick** (pointer events) for x/y and Up/Down buttons for z; buttons for the
  gripper, start / stop / reset (re-record) and the success / failure labels.

Options (``device.<key>=value``): ``host`` (127.0.0.1; 0.0.0.0 to serve the network),
``port`` (8765; 0 picks a free port), ``cert_file`` + ``key_file`` (serve HTTPS/WSS),
``token`` (fixed token, for tests; default: a fresh random one), ``speed`` (0.5: full deflection
as a fraction of the action's scale), ``timeout_ms`` (300), ``rate`` (200 messages/s per page),
``jpeg_quality`` (80).
"""

from __future__ import annotations

import base64
import io
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hardware.teleop.base import DEVICES, DeviceError, TeleopContext, TeleopInput, parse_options
from hardware.teleop.browser.auth import new_token, tls_files
from hardware.teleop.browser.protocol import OperatorState
from hardware.teleop.mapping import initial_gripper, mapper_for

log = logging.getLogger(__name__)

IMAGE_PREFIX = "observation.images."


@dataclass
class BrowserOptions:
    """``device.<key>=value`` options of ``device=browser``."""

    host: str = "127.0.0.1"
    """Interface to bind (0.0.0.0: every interface; then use TLS)."""
    port: int = 8765
    """TCP port; 0 picks a free one (reported by :attr:`BrowserDevice.url`)."""
    cert_file: str | None = None
    """TLS certificate (PEM) to serve HTTPS/WSS; with ``key_file``."""
    key_file: str | None = None
    """TLS private key (PEM)."""
    token: str | None = None
    """Session token (default: a fresh random one per session)."""
    speed: float = 0.5
    """Full deflection as a fraction of the action's full scale, in (0, 1]."""
    timeout_ms: float = 300.0
    """Dead-man timeout: no input or heartbeat for this long -> zero motion."""
    rate: float = 200.0
    """Messages per second accepted from one page (more are dropped and counted)."""
    jpeg_quality: int = 80
    """JPEG quality of the camera frames sent to the page."""


@DEVICES.register("browser")
class BrowserDevice:
    """Browser teleop: a local web server, a page with camera views, keyboard/gamepad/joystick.

    Args:
        context: the task's features and rate (``context.env`` renders a view for state-only
            tasks); ``context.options`` as in :class:`BrowserOptions`.
    """

    name: ClassVar[str] = "browser"

    def __init__(self, context: TeleopContext) -> None:
        self.context = context
        self.options = parse_options(BrowserOptions, dict(context.options), "browser")
        if not 0 < self.options.speed <= 1 or self.options.timeout_ms <= 0:
            raise DeviceError("device=browser needs 0 < speed <= 1 and timeout_ms > 0")
        self.mapper = mapper_for(context, "browser")
        self.token = self.options.token or new_token()
        self.state = OperatorState(timeout_s=self.options.timeout_ms / 1000)
        self.hub = None
        self._server = None
        self.url: str | None = None
        self.episode = 0
        self.interventions = 0
        self._gripper: float | None = None
        self._was_intervening = False
        self._last_seq = -1
        self.latencies_ms: list[float] = []
        """Browser input timestamp -> the read() that first returned it, per input (ms)."""
        self._status: dict[str, Any] = {}
        self._render_ok = True

    # ----------------------------------------------------------------- device protocol
    def connect(self) -> None:
        """Start the server and print the page's URL (with the token)."""
        if self._server is not None:
            return
        tls = tls_files(self.options.cert_file, self.options.key_file)
        try:
            import websockets  # noqa: F401  (uvicorn's WebSocket support)

            from hardware.teleop.browser.server import Hub, ServerThread, build_app
        except ImportError as exc:
            raise DeviceError(
                f"device=browser needs starlette and uvicorn ({exc}): "
                "pip install -e '.[teleop-browser]' (starlette, uvicorn, websockets)"
            ) from exc
        self.hub = Hub(self.state)
        app = build_app(self.hub, self.token, tls is not None, rate=self.options.rate)
        server = ServerThread(app, self.options.host, self.options.port, tls)
        server.start()
        self._server = server
        scheme = "https" if tls else "http"
        host = self.options.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self.url = f"{scheme}://{shown}:{server.port}/?token={self.token}"
        print(f"browser teleop: open {self.url}", flush=True)
        if host not in ("127.0.0.1", "localhost", "::1") and tls is None:
            log.warning(
                "device=browser serves %s without TLS: the token travels in clear text; "
                "pass device.cert_file= and device.key_file=",
                host,
            )

    def disconnect(self) -> None:
        """Stop the server (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def reset(self, seed: int | None = None) -> None:
        """A new episode: readouts restart, the gripper follows the robot's at the next read."""
        self.episode += 1
        self._gripper = None
        self._was_intervening = False
        self._status = {"step": 0, "success": False}

    def read(self, obs: dict[str, np.ndarray], policy_action: np.ndarray | None) -> TeleopInput:
        """The newest input mapped to an action; zero motion unless intervene is held and the
        page was heard from within ``timeout_ms``. Never blocks."""
        snap = self.state.snapshot()
        if self._gripper is None:
            self._gripper = initial_gripper(self.context.features, obs)
        held = snap.live and snap.intervene
        motion = np.zeros(3, np.float32)
        if held:
            motion = np.asarray(snap.motion, np.float32) * self.options.speed
            if snap.gripper is not None:
                self._gripper = snap.gripper
        self.interventions += int(held and not self._was_intervening)
        self._was_intervening = held
        extra: dict[str, Any] = {
            "gripper": "closed" if self._gripper > 0 else "open",
            "live": snap.live,
            "input_seq": snap.seq,
        }
        if snap.seq != self._last_seq and snap.input_t_ms is not None:
            self._last_seq = snap.seq
            latency = time.time() * 1000 - snap.input_t_ms
            self.latencies_ms.append(latency)
            extra["latency_ms"] = latency
        return TeleopInput(
            action=self.mapper(obs, motion, self._gripper),
            intervene=held,
            success="success" in snap.events,
            failure="failure" in snap.events,
            rerecord="rerecord" in snap.events,
            stop="stop" in snap.events,
            start="start" in snap.events,
            extra=extra,
        )

    def show(self, obs: dict[str, np.ndarray], status: dict[str, Any]) -> None:
        """Publish the camera views (JPEG) and status to the pages; skipped with no page open."""
        self._status.update(status)
        if self.hub is None or self.hub.clients <= 0:
            return
        images = {
            key[len(IMAGE_PREFIX) :]: self._encode(np.asarray(value))
            for key, value in obs.items()
            if key.startswith(IMAGE_PREFIX)
        }
        if not images and self._render_ok and self.context.env is not None:
            try:
                frame = self.context.env.render()
                if frame is not None:
                    images["render"] = self._encode(np.asarray(frame))
            except Exception as exc:  # noqa: BLE001  (no renderer: show state readouts only)
                log.warning("device=browser: env.render() failed (%s); showing state only", exc)
                self._render_ok = False
        self.hub.publish({"type": "frame", "images": images, "status": self.readouts(obs)})

    # ----------------------------------------------------------------- helpers
    def readouts(self, obs: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """The status shown on the page: episode, step, success, interventions, latency, ..."""
        counters = self.state.counters()
        out: dict[str, Any] = {
            "episode": self.episode,
            "step": int(self._status.get("step", 0)),
            "success": bool(self._status.get("success", False)),
            "interventions": self.interventions,
            "intervening": self._was_intervening,
            "gripper": self._gripper if self._gripper is not None else -1.0,
            "latency_ms": round(self.latencies_ms[-1], 1) if self.latencies_ms else None,
            "accepted": counters["accepted"],
            "dropped": sum(counters["dropped"].values()),
        }
        if obs is not None and "observation.state" in obs:
            spec = self.context.features.get("observation.state")
            names = list(getattr(spec, "names", None) or [])
            values = np.asarray(obs["observation.state"], np.float64).ravel()[:16]
            names = names[: len(values)] + [f"s{i}" for i in range(len(names), len(values))]
            out["state"] = {n: round(float(v), 4) for n, v in zip(names, values, strict=True)}
        return out

    def counters(self) -> dict[str, Any]:
        """Messages accepted and dropped (by reason) since connect."""
        return self.state.counters()

    def _encode(self, image: np.ndarray) -> str:
        from PIL import Image

        if image.dtype != np.uint8:
            image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
            image = np.moveaxis(image, 0, -1)  # CHW -> HWC
        buf = io.BytesIO()
        Image.fromarray(image.squeeze()).convert("RGB").save(
            buf, format="JPEG", quality=self.options.jpeg_quality
        )
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()

    def __enter__(self) -> BrowserDevice:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
