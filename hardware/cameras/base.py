"""The camera contract: typed configs, timestamped frames and a background reader per camera.

A camera (``cameras.<name>`` in a robot config) has a typed :class:`CameraConfig` (a subclass per
driver, registered with ``@CAMERAS.register("<type>")``), no side effects until :meth:`Camera.connect`,
and one daemon reader thread that grabs frames as fast as the source delivers them and keeps only
the newest. Consumers either block for the next new frame (:meth:`Camera.read`) or take the newest
one without waiting (:meth:`Camera.latest`, which refuses frames older than ``max_age_s``). A read
failure in the thread is kept and re-raised to the consumer with the fix. Vendor libraries (cv2,
pyrealsense2) are imported inside ``connect()``: a missing one is a :class:`CameraError` naming
the extra to install.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np

from robot_learning.errors import HardwareUnavailable
from robot_learning.features import IMAGE_PREFIX, Feature
from robot_learning.registry import Registry

log = logging.getLogger(__name__)

#: how to install the optional camera libraries (named in every "missing library" error)
INSTALL_HINT = "pip install 'robot-learning[cameras]'"


class CameraError(HardwareUnavailable):
    """A camera cannot be used (library or device missing, wrong size, stale or failed stream);
    the message names the camera and the fix."""


@dataclass
class CameraConfig:
    """Settings every camera has (``cameras.<name>.<key>=...``); drivers subclass it."""

    type: str = "opencv"
    """Registered driver name: ``opencv``, ``realsense`` or ``file``."""
    width: int = 640
    """Frame width in pixels delivered to the robot (the feature's W)."""
    height: int = 480
    """Frame height in pixels delivered to the robot (the feature's H)."""
    fps: float = 30.0
    """Requested frame rate (Hz); the file camera plays at this rate."""
    max_age_s: float = 0.5
    """``latest()`` refuses a frame older than this (seconds): a frozen stream is an error."""
    color: Literal["rgb", "bgr"] = "rgb"
    """Channel order of delivered frames (datasets and policies expect ``rgb``)."""
    resize: bool = False
    """Scale frames to ``width`` x ``height`` when the source gives another size (otherwise a
    size mismatch is an error naming the size the source gave)."""
    timeout_s: float = 2.0
    """How long ``connect()`` waits for the first frame and ``read()`` for a new one (seconds)."""

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera width={self.width} height={self.height} must be positive")
        if not self.fps > 0:
            raise ValueError(f"camera fps={self.fps} must be positive")
        if not self.max_age_s > 0 or not self.timeout_s > 0:
            raise ValueError(
                f"camera max_age_s={self.max_age_s} and timeout_s={self.timeout_s} must be positive"
            )
        if self.color not in ("rgb", "bgr"):
            raise ValueError(f"camera color={self.color!r} must be 'rgb' or 'bgr'")


@dataclass(frozen=True)
class Frame:
    """One captured image and when it was captured."""

    image: np.ndarray
    """uint8 ``(H, W, 3)``, RGB (BGR when the camera's ``color`` is ``bgr``)."""
    timestamp_s: float
    """``time.monotonic()`` when the frame reached the host (use it to pair with other sensors)."""
    wall_time: float
    """``time.time()`` at the same moment (for logs and cross-machine alignment)."""
    index: int
    """Sequence number of this frame since ``connect()`` (0, 1, 2, ...; gaps = frames skipped)."""
    device_timestamp_s: float | None = None
    """The device's own capture time in seconds, when it has one (RealSense), else None."""
    depth: np.ndarray | None = None
    """Depth in metres ``(H, W)`` float32, aligned to ``image`` (RealSense with depth on)."""

    def age_s(self, now: float | None = None) -> float:
        """Seconds since capture (monotonic clock)."""
        return (time.monotonic() if now is None else now) - self.timestamp_s


class Capture(NamedTuple):
    """What a driver's ``_grab`` returns: one frame straight from the source."""

    image: np.ndarray
    """RGB uint8 ``(h, w, 3)`` (or ``(h, w)`` grey) at the source's size."""
    device_timestamp_s: float | None = None
    """The device's capture time in seconds, if it has one."""
    depth: np.ndarray | None = None
    """Depth in metres aligned to ``image``, if the driver streams depth."""


@dataclass(frozen=True)
class CameraStats:
    """What the background reader has observed."""

    frames: int
    """Frames captured since ``connect()``."""
    fps: float
    """Observed rate over the last frames (Hz; 0 before two frames)."""
    max_interval_s: float
    """Longest gap between consecutive frames in that window (a hiccup detector)."""
    age_s: float | None
    """Age of the newest frame (None before the first)."""


def camera_key(name: str) -> str:
    """The observation key of camera ``name``: ``observation.images.<name>``."""
    return IMAGE_PREFIX + name


def camera_feature(cfg: CameraConfig) -> Feature:
    """The feature a camera with ``cfg`` delivers: ``video`` uint8 ``(height, width, 3)``."""
    return Feature("video", (cfg.height, cfg.width, 3), ("height", "width", "channels"))


def camera_features(cameras: dict[str, CameraConfig]) -> dict[str, Feature]:
    """``observation.images.<name>`` -> :class:`Feature` for each camera config (no device needed)."""
    return {camera_key(name): camera_feature(cfg) for name, cfg in cameras.items()}


class Pacer:
    """Sleeps until the next tick of a fixed rate without bursting after a stall."""

    def __init__(self, fps: float, stop: threading.Event) -> None:
        self.period = 1.0 / fps
        self._stop = stop
        self._next: float | None = None

    def wait(self) -> bool:
        """Sleep until the next tick; False if stopped meanwhile."""
        now = time.monotonic()
        if self._next is None or now - self._next > self.period:
            self._next = now  # first tick, or fell behind: restart the schedule, never catch up
        delay = self._next - now
        self._next += self.period
        return not (delay > 0 and self._stop.wait(delay))


class Camera(ABC):
    """Base class of every camera driver (see the module docstring).

    Drivers implement :meth:`_open` (open and verify the device), :meth:`_grab` (block for the
    next frame, a :class:`Capture`) and :meth:`_close`;
    the base runs them in the reader thread and does colour order, size checks and bookkeeping.
    """

    kind: ClassVar[str] = ""
    config_class: ClassVar[type[CameraConfig]] = CameraConfig
    #: frames kept for the observed-rate statistics
    stats_window: ClassVar[int] = 30

    def __init__(self, cfg: CameraConfig, name: str = "camera") -> None:
        self.cfg = cfg
        self.name = name
        """The camera's name in the robot (its key is ``observation.images.<name>``)."""
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Frame | None = None
        self._error: BaseException | None = None
        self._last_read = -1
        self._count = 0
        self._times: deque[float] = deque(maxlen=self.stats_window)
        self._connected = False

    # ------------------------------------------------------------------ description
    @property
    def key(self) -> str:
        """``observation.images.<name>``."""
        return camera_key(self.name)

    def features(self) -> Feature:
        """The feature of this camera's frames (known before ``connect()``)."""
        return camera_feature(self.cfg)

    def describe(self) -> str:
        """``camera 'wrist' (opencv /dev/video0)``: how errors name this camera."""
        return f"camera {self.name!r} ({self.kind})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, connected={self._connected})"

    # ------------------------------------------------------------------ driver hooks
    @abstractmethod
    def _open(self) -> None:
        """Open the device and check it can deliver the configured stream."""

    @abstractmethod
    def _grab(self) -> Capture:
        """Block until the source's next frame. Raise :class:`CameraError` naming the fix when the source fails or ends."""

    @abstractmethod
    def _close(self) -> None:
        """Release the device (called once, from the reader thread or after a failed open)."""

    def _resize(self, image: np.ndarray) -> np.ndarray:
        """Scale an RGB frame to the configured size (PyAV's swscale; drivers may override)."""
        import av  # a core dependency; imported here so `import hardware.cameras` stays light

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        out = frame.reformat(width=self.cfg.width, height=self.cfg.height, interpolation="AREA")
        return out.to_ndarray()

    # ------------------------------------------------------------------ lifecycle
    @property
    def is_connected(self) -> bool:
        """True between :meth:`connect` and :meth:`disconnect`."""
        return self._connected

    def connect(self) -> None:
        """Open the device, start the reader and wait for the first frame (idempotent).

        Raises :class:`CameraError` naming the fix when the library or device is missing, the
        size is wrong or no frame arrives within ``timeout_s``."""
        if self._connected:
            return
        if self._thread is not None and self._thread.is_alive():
            raise CameraError(
                f"{self.describe()}: the previous reader is still blocked in a read and holds "
                "the device; wait for it (or replug the camera) before connecting again"
            )
        self._stop.clear()
        self._latest, self._error, self._last_read, self._count = None, None, -1, 0
        self._times.clear()
        try:
            self._open()
        except Exception as exc:
            try:
                self._close()  # whatever the driver opened before failing
            except Exception:
                log.debug("%s: close after a failed open failed", self.describe(), exc_info=True)
            if isinstance(exc, CameraError):
                raise
            raise CameraError(f"{self.describe()}: cannot open: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._connected = True
        self._thread.start()
        try:
            self._wait_for(0, self.cfg.timeout_s, "the first frame")
        except CameraError:
            self.disconnect()
            raise
        log.info("%s connected: %dx%d at %g fps", self.describe(), *self._wh(), self.cfg.fps)

    def disconnect(self) -> None:
        """Stop the reader and release the device (idempotent)."""
        if not self._connected:
            return
        self._connected = False
        self._stop.set()
        thread = self._thread
        if thread is not None:
            # the thread releases the device itself once its current grab returns, so the
            # device is never closed under a read in progress (cv2 may crash on that)
            thread.join(timeout=max(1.0, 2.0 / self.cfg.fps) + self.cfg.timeout_s)
            if thread.is_alive():
                log.warning(
                    "%s: reader still blocked in a read; it releases the device when the read "
                    "returns",
                    self.describe(),
                )
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> Camera:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    @property
    def reader_alive(self) -> bool:
        """True while the background reader thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ reader thread
    def _wh(self) -> tuple[int, int]:
        return self.cfg.width, self.cfg.height

    def _conform(self, image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise CameraError(
                f"{self.describe()} gave a {image.dtype} {image.shape} array, not uint8 (H, W, 3)"
            )
        h, w = image.shape[:2]
        if (w, h) != self._wh():
            if not self.cfg.resize:
                raise CameraError(
                    f"{self.describe()} gives {w}x{h} frames, not the configured "
                    f"{self.cfg.width}x{self.cfg.height}: set width: {w} and height: {h}, or "
                    "resize: true to scale them"
                )
            image = self._resize(image)
        if self.cfg.color == "bgr":
            image = image[:, :, ::-1]
        return np.ascontiguousarray(image)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    cap = self._grab()
                    if self._stop.is_set():
                        break
                    image = self._conform(cap.image)
                except Exception as exc:
                    if self._stop.is_set():
                        break  # a read cut short by disconnect() is not a failure
                    if not isinstance(exc, CameraError):
                        exc = CameraError(
                            f"{self.describe()} stopped delivering frames ({exc}); check the "
                            "cable and power, then reconnect (disconnect(); connect())"
                        )
                    log.error("%s", exc)
                    with self._cond:
                        self._error = exc
                        self._cond.notify_all()
                    return
                now, wall = time.monotonic(), time.time()
                frame = Frame(image, now, wall, self._count, cap.device_timestamp_s, cap.depth)
                with self._cond:
                    self._latest = frame
                    self._count += 1
                    self._times.append(now)
                    self._cond.notify_all()
        finally:
            try:
                self._close()
            except Exception:  # releasing a device that already failed may fail too
                log.debug("%s: close failed", self.describe(), exc_info=True)

    # ------------------------------------------------------------------ consumers
    def _check_usable(self) -> None:
        if self._error is not None:
            raise CameraError(str(self._error)) from self._error
        if not self._connected:
            raise CameraError(f"{self.describe()} is not connected: call connect() first")

    def _wait_for(self, after: int, timeout_s: float, what: str) -> Frame:
        """Block until a frame with index >= ``after`` exists (called with the lock free)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                self._check_usable()
                if self._latest is not None and self._latest.index >= after:
                    return self._latest
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CameraError(
                        f"{self.describe()}: no {what} within {timeout_s:g} s (observed "
                        f"{self._fps():.1f} fps, configured {self.cfg.fps:g}); check the device "
                        "is streaming, or raise timeout_s"
                    )
                self._cond.wait(left)

    def read(self, timeout_s: float | None = None) -> Frame:
        """Block until a frame newer than the last one :meth:`read` returned (at most
        ``timeout_s``, default the config's); frames captured meanwhile are skipped, not queued."""
        timeout = self.cfg.timeout_s if timeout_s is None else timeout_s
        frame = self._wait_for(self._last_read + 1, timeout, "new frame")
        self._last_read = frame.index
        return frame

    def latest(self, max_age_s: float | None = None) -> Frame:
        """The newest frame without waiting; raises :class:`CameraError` if there is none yet, it
        is older than ``max_age_s`` (default the config's), or the reader failed."""
        limit = self.cfg.max_age_s if max_age_s is None else max_age_s
        with self._cond:
            self._check_usable()
            frame = self._latest
            fps = self._fps()
        if frame is None:
            raise CameraError(f"{self.describe()} has no frame yet: wait for connect() to return")
        age = frame.age_s()
        if age > limit:
            raise CameraError(
                f"{self.describe()}: newest frame is {age:.3f} s old (limit max_age_s="
                f"{limit:g}; observed {fps:.1f} fps, configured {self.cfg.fps:g}): the stream "
                "stalled; check the cable or USB bandwidth, or lower fps"
            )
        return frame

    def _fps(self) -> float:
        t = self._times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) >= 2 and t[-1] > t[0] else 0.0

    def stats(self) -> CameraStats:
        """Observed rate, longest recent gap and the newest frame's age."""
        with self._cond:
            t = list(self._times)
            frame, count = self._latest, self._count
            fps = self._fps()
        gaps = np.diff(t) if len(t) >= 2 else np.zeros(0)
        return CameraStats(
            frames=count,
            fps=fps,
            max_interval_s=float(gaps.max()) if gaps.size else 0.0,
            age_s=frame.age_s() if frame is not None else None,
        )


#: ``cameras.<name>.type`` -> camera class
CAMERAS: Registry[type[Camera]] = Registry(
    "camera",
    discover=("hardware.cameras.opencv", "hardware.cameras.realsense", "hardware.cameras.fake"),
)


def camera_config(
    data: CameraConfig | dict[str, Any], name: str = "camera", prefix: str = "cameras."
) -> CameraConfig:
    """The driver's typed config for a ``cameras.<name>`` block; wrong keys or values name
    ``<prefix><name>.<key>`` (a robot passes ``prefix="robot.cameras."``)."""
    if isinstance(data, CameraConfig):
        cls = CAMERAS.get(data.type)
        if isinstance(data, cls.config_class):
            return data
        data = {f.name: getattr(data, f.name) for f in fields(data)}
    from robot_learning.config import build  # config imports envs: keep hardware light

    data = dict(data)
    kind = data.get("type") or CameraConfig.type
    cls = CAMERAS.get(kind)
    return build(
        cls.config_class, {**data, "type": kind}, where=f"camera {name}", prefix=f"{prefix}{name}."
    )


def make_camera(cfg: CameraConfig | dict[str, Any], name: str = "camera") -> Camera:
    """The camera of ``cfg`` (a config or a ``cameras.<name>`` mapping), not yet connected."""
    cfg = camera_config(cfg, name)
    return CAMERAS.get(cfg.type)(cfg, name)
