"""``type: realsense``: Intel RealSense depth cameras (D4xx) through ``pyrealsense2``.

Streams colour as ``rgb8`` at the configured size and rate (``config.enable_device(serial)``,
``enable_stream(color, ...)``), optionally depth (``z16``) aligned to the colour image and
converted to metres. Each :class:`~hardware.cameras.base.Frame` carries the device's own capture
time (``frame.get_timestamp()``, milliseconds -> seconds) as ``device_timestamp_s`` besides the
host's monotonic time. ``pyrealsense2`` is imported in ``connect()``: a missing module, no device,
an unknown serial or an unsupported mode is a :class:`~hardware.cameras.base.CameraError` naming
the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.cameras.base import CAMERAS, Camera, CameraConfig, CameraError, Capture

#: how to install the RealSense SDK's Python module
REALSENSE_HINT = (
    "pip install 'robot-learning[realsense]' (PyPI wheels cover x86-64 Linux and Windows; on ARM "
    "boards such as Jetson build librealsense with -DBUILD_PYTHON_BINDINGS=ON)"
)
#: what to check when no device shows up
NO_DEVICE_HINT = (
    "plug the camera into a USB 3 port, check it is listed by `rs-enumerate-devices`, and on "
    "Linux install librealsense's udev rules (99-realsense-libusb.rules) so it can be opened "
    "without root"
)


@dataclass
class RealSenseCameraConfig(CameraConfig):
    """``type: realsense`` settings."""

    type: str = "realsense"
    """Registered driver name."""
    serial: str | None = None
    """Serial number of the camera to open (``rs-enumerate-devices -s``); None: the only one
    connected (an error when several are)."""
    depth: bool = False
    """Also stream depth, aligned to the colour image, as ``Frame.depth`` in metres."""


@CAMERAS.register("realsense")
class RealSenseCamera(Camera):
    """A RealSense colour (+ aligned depth) stream (see the module docstring)."""

    kind = "realsense"
    config_class = RealSenseCameraConfig
    cfg: RealSenseCameraConfig

    def __init__(self, cfg: RealSenseCameraConfig, name: str = "camera") -> None:
        super().__init__(cfg, name)
        self._rs: Any = None
        self._pipeline: Any = None
        self._align: Any = None
        self._depth_scale = 0.0
        self.serial: str | None = cfg.serial
        """Serial of the opened device (known after ``connect()``)."""

    def describe(self) -> str:
        return f"camera {self.name!r} (realsense {self.serial or 'any'})"

    def _find_device(self) -> str:
        rs = self._rs
        found = {
            d.get_info(rs.camera_info.serial_number): d.get_info(rs.camera_info.name)
            for d in rs.context().query_devices()
        }
        listing = ", ".join(f"{s} ({n})" for s, n in found.items())
        if not found:
            raise CameraError(f"{self.describe()}: no RealSense device found; {NO_DEVICE_HINT}")
        if self.cfg.serial is None:
            if len(found) > 1:
                raise CameraError(
                    f"{self.describe()}: {len(found)} RealSense devices found ({listing}); set "
                    "serial to the one to use"
                )
            return next(iter(found))
        if self.cfg.serial not in found:
            raise CameraError(
                f"{self.describe()}: no RealSense device with serial {self.cfg.serial}; found "
                f"{listing}; set serial to one of them"
            )
        return self.cfg.serial

    def _open(self) -> None:
        try:
            import pyrealsense2 as rs
        except ImportError as exc:
            raise CameraError(
                f"{self.describe()}: pyrealsense2 is not installed ({exc}); {REALSENSE_HINT}"
            ) from None
        self._rs = rs
        self.serial = self._find_device()
        cfg = self.cfg
        fps = int(round(cfg.fps))
        config = rs.config()
        config.enable_device(self.serial)
        config.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, fps)
        if cfg.depth:
            config.enable_stream(rs.stream.depth, cfg.width, cfg.height, rs.format.z16, fps)
        pipeline = rs.pipeline()
        if not config.can_resolve(rs.pipeline_wrapper(pipeline)):
            what = "colour" + (" and depth" if cfg.depth else "")
            raise CameraError(
                f"{self.describe()} cannot stream {what} at {cfg.width}x{cfg.height} {fps} fps; "
                "choose a mode listed by `rs-enumerate-devices` (e.g. 640x480 or 1280x720 at 30)"
            )
        profile = pipeline.start(config)
        self._pipeline = pipeline
        color = profile.get_stream(rs.stream.color).as_video_stream_profile()
        got = (color.width(), color.height(), color.fps())
        if got != (cfg.width, cfg.height, fps):
            raise CameraError(
                f"{self.describe()} streams {got[0]}x{got[1]} at {got[2]} fps, not the requested "
                f"{cfg.width}x{cfg.height} at {fps}; set width/height/fps to a supported mode"
            )
        if cfg.depth:
            self._depth_scale = profile.get_device().first_depth_sensor().get_depth_scale()
            self._align = rs.align(rs.stream.color)

    def _grab(self) -> Capture:
        timeout_ms = int(self.cfg.timeout_s * 1000)
        try:
            frames = self._pipeline.wait_for_frames(timeout_ms)
        except RuntimeError as exc:
            raise CameraError(
                f"{self.describe()}: no frames within {timeout_ms} ms ({exc}); check the USB 3 "
                "connection (`rs-enumerate-devices`) and reconnect"
            ) from exc
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            raise CameraError(f"{self.describe()}: a frame set arrived without a colour frame")
        # copy: the SDK recycles the frame's buffer once the frame object is released
        image = np.array(np.asanyarray(color.get_data()), copy=True)
        depth = None
        if self._align is not None:
            dframe = frames.get_depth_frame()
            if dframe:
                depth = np.asanyarray(dframe.get_data()).astype(np.float32) * self._depth_scale
        return Capture(image, color.get_timestamp() / 1000.0, depth)

    def _close(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        self._align = None
        if pipeline is not None:
            pipeline.stop()
