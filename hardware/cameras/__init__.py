"""Cameras (``cameras.<name>`` of a robot): OpenCV, RealSense and a file-backed fake, each with a
background reader that keeps the newest timestamped frame (see :mod:`hardware.cameras.base`).

Importing this package registers the drivers; their libraries (cv2, pyrealsense2) load only in
``connect()``.
"""

from hardware.cameras import fake, opencv, realsense  # noqa: F401  (registers the drivers)
from hardware.cameras.base import (
    CAMERAS,
    Camera,
    CameraConfig,
    CameraError,
    CameraStats,
    Frame,
    camera_config,
    camera_feature,
    camera_features,
    camera_key,
    make_camera,
)

__all__ = [
    "CAMERAS",
    "Camera",
    "CameraConfig",
    "CameraError",
    "CameraStats",
    "Frame",
    "camera_config",
    "camera_feature",
    "camera_features",
    "camera_key",
    "make_camera",
]
