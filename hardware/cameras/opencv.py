"""``type: opencv``: any camera OpenCV can open (UVC webcams over V4L2, files, network streams).

``source`` is a device index (``0``), a device path (``/dev/video0``, or a stable
``/dev/v4l/by-id/...`` link), a video file or a URL (``rtsp://...``). The requested size, rate and
pixel format are set on the device and read back: a device that cannot give the configured size
is an error naming the size it gave (``resize: true`` scales instead). Frames are converted from
OpenCV's BGR to RGB. Files are paced at ``fps`` so they behave like a live camera and fail at
their end like an unplugged one. ``cv2`` (``opencv-python-headless``) is imported in ``connect()``.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hardware.cameras.base import (
    CAMERAS,
    INSTALL_HINT,
    Camera,
    CameraConfig,
    CameraError,
    Capture,
    Pacer,
)

log = logging.getLogger(__name__)

#: ``backend`` names -> cv2 API preference attribute
BACKENDS = {
    "any": "CAP_ANY",
    "v4l2": "CAP_V4L2",
    "ffmpeg": "CAP_FFMPEG",
    "gstreamer": "CAP_GSTREAMER",
    "dshow": "CAP_DSHOW",
    "msmf": "CAP_MSMF",
    "avfoundation": "CAP_AVFOUNDATION",
}


@dataclass
class OpenCVCameraConfig(CameraConfig):
    """``type: opencv`` settings."""

    type: str = "opencv"
    """Registered driver name."""
    source: int | str = 0
    """Device index, ``/dev/video*`` path, video file or stream URL."""
    fourcc: str | None = None
    """Pixel format to request, e.g. ``MJPG`` (USB webcams need it for large sizes at 30 fps)."""
    backend: str | None = None
    """OpenCV capture API: one of :data:`BACKENDS`; None: ``v4l2`` for devices on Linux, else
    OpenCV's default."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise ValueError(f"camera fourcc={self.fourcc!r} must be 4 characters, e.g. 'MJPG'")
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(f"camera backend={self.backend!r} must be one of {sorted(BACKENDS)}")


def video_devices() -> list[str]:
    """``/dev/video*`` device nodes present on this machine (Linux), sorted."""
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


def _devices_hint() -> str:
    found = video_devices()
    if found:
        return f"video devices found: {', '.join(found)}; set source to one of them"
    return (
        "no /dev/video* devices found: is the camera plugged in (check `lsusb`) and its driver "
        "loaded (check `dmesg`)?"
    )


@CAMERAS.register("opencv")
class OpenCVCamera(Camera):
    """A camera read through ``cv2.VideoCapture`` (see the module docstring)."""

    kind = "opencv"
    config_class = OpenCVCameraConfig
    cfg: OpenCVCameraConfig

    def __init__(self, cfg: OpenCVCameraConfig, name: str = "camera") -> None:
        super().__init__(cfg, name)
        self._cap: Any = None
        self._cv2: Any = None
        self._pacer: Pacer | None = None
        self.is_file = False
        """True when ``source`` is a file (paced at ``fps``; its end is an error)."""
        self.device_fps: float | None = None
        """The rate the device reported after configuration (None: it reported none)."""

    def describe(self) -> str:
        return f"camera {self.name!r} (opencv {self.cfg.source})"

    def _target(self) -> tuple[int | str, bool]:
        """(what to pass to VideoCapture, whether it is a local device)."""
        src = self.cfg.source
        if isinstance(src, int) or (isinstance(src, str) and src.isdigit()):
            index = int(src)
            if sys.platform.startswith("linux") and not os.path.exists(f"/dev/video{index}"):
                raise CameraError(
                    f"{self.describe()}: no device /dev/video{index}; {_devices_hint()}"
                )
            return index, True
        if src.startswith("/dev/"):
            if not os.path.exists(src):
                raise CameraError(f"{self.describe()}: no device {src}; {_devices_hint()}")
            if not os.access(src, os.R_OK | os.W_OK):
                raise CameraError(
                    f"{self.describe()}: no permission to open {src}; add your user to the "
                    "'video' group (sudo usermod -aG video $USER, then log in again)"
                )
            return src, True
        if "://" in src:
            return src, False
        path = Path(src).expanduser()
        if not path.is_file():
            raise CameraError(
                f"{self.describe()}: {src} is not a device, URL or existing file; {_devices_hint()}"
            )
        self.is_file = True
        return str(path), False

    def _open(self) -> None:
        try:
            import cv2
        except ImportError as exc:
            raise CameraError(
                f"{self.describe()}: OpenCV is not installed ({exc}); install it with "
                f"{INSTALL_HINT}"
            ) from None
        self._cv2 = cv2
        self.is_file = False
        target, is_device = self._target()
        backend = self.cfg.backend or ("v4l2" if is_device and sys.platform == "linux" else "any")
        api = getattr(cv2, BACKENDS[backend], cv2.CAP_ANY)
        self._cap = cv2.VideoCapture(target, api)
        if not self._cap.isOpened():
            hint = (
                f"is another program using it, or is it not a capture device? {_devices_hint()}"
                if is_device
                else "check the file or URL plays with ffplay"
            )
            raise CameraError(f"{self.describe()}: OpenCV cannot open it ({backend}); {hint}")
        if is_device:
            self._configure_device()
        else:
            self._pacer = Pacer(self.cfg.fps, self._stop) if self.is_file else None
        self._check_size()

    def _configure_device(self) -> None:
        cv2, cap, cfg = self._cv2, self._cap, self.cfg
        if cfg.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue adds latency; we keep the newest
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        self.device_fps = fps if fps > 0 else None
        if self.device_fps is not None and abs(self.device_fps - cfg.fps) > 0.5:
            # many UVC drivers report a rate they do not keep (or the reverse): warn, and let the
            # observed rate in stats() and max_age_s catch a stream that is really too slow
            log.warning(
                "%s: asked for %g fps, the device reports %g", self.describe(), cfg.fps, fps
            )

    def _check_size(self) -> None:
        cv2, cfg = self._cv2, self.cfg
        w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w > 0 and h > 0 and (w, h) != (cfg.width, cfg.height) and not cfg.resize:
            raise CameraError(
                f"{self.describe()} gives {w}x{h}, not the requested {cfg.width}x{cfg.height}: "
                f"set width: {w} and height: {h} (or a size the device supports: "
                f"`v4l2-ctl --list-formats-ext`), or resize: true to scale frames"
            )

    def _grab(self) -> Capture:
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            if self.is_file:
                raise CameraError(f"{self.describe()}: the file ended; reconnect to play it again")
            raise CameraError(
                f"{self.describe()}: reading a frame failed (unplugged, or USB bandwidth "
                "exhausted?); check the cable, try fourcc: MJPG or a lower size/fps, then "
                "reconnect"
            )
        if self._pacer is not None:
            self._pacer.wait()
        if bgr.ndim == 2:
            return Capture(bgr)
        return Capture(self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB))

    def _resize(self, image: np.ndarray) -> np.ndarray:
        return self._cv2.resize(
            image, (self.cfg.width, self.cfg.height), interpolation=self._cv2.INTER_AREA
        )

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
