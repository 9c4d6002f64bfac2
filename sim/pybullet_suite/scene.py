"""Scene assets of the PyBullet arm tasks: cameras, lighting, colours, the Panda URDF variant.

Kept apart from :mod:`sim.pybullet_suite.base` (the env and its controller) and free of any
``pybullet`` import, so the camera poses can be compared with MuJoCo's without a simulator.
Frames and units as in :mod:`sim.arm_common` (metres, world origin at the robot base).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.arm_common import (
    FRONT_CAMERA_FOVY,
    FRONT_CAMERA_POS,
    FRONT_CAMERA_TARGET,
    WRIST_CAMERA_FOVY,
    WRIST_CAMERA_POS,
    WRIST_CAMERA_TARGET,
)

#: panda.urdf link index of panda_hand, the wrist camera's mount
HAND_LINK = 8


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera: fixed in the world, or mounted on a robot link (``link`` set).

    For a world camera ``eye``/``target``/``up`` are world coordinates; for a link camera
    they are in the link frame and move with it.
    """

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]
    fov: float
    """Vertical field of view in degrees."""
    link: int | None = None


#: cameras of the arm tasks, posed from sim/arm_common.py as in the MuJoCo scene: ``front``
#: stands beyond the table to the robot's left looking back at the workspace; ``wrist`` sits
#: on the hand 7 cm in front of the fingers (hand +x) and looks down past the fingertips
#: (hand +z is the approach axis), so the fingers and what lies below them stay in view.
ARM_CAMERAS = {
    "front": CameraSpec(
        eye=FRONT_CAMERA_POS, target=FRONT_CAMERA_TARGET, up=(0.0, 0.0, 1.0), fov=FRONT_CAMERA_FOVY
    ),
    "wrist": CameraSpec(
        eye=WRIST_CAMERA_POS,
        target=WRIST_CAMERA_TARGET,
        up=(1.0, 0.0, 0.0),
        fov=WRIST_CAMERA_FOVY,
        link=HAND_LINK,
    ),
}
#: TinyRenderer lighting (direction points from the scene towards the light, like MuJoCo's key)
LIGHT_DIRECTION = np.array([0.4, -0.3, 1.0])
LIGHT_DIFFUSE = 0.6
LIGHT_AMBIENT = 0.45
#: table top (half extents, m) and colours as in the MuJoCo scene
TABLE_HALF = (0.55, 0.6, 0.02)
TABLE_COLOR = (0.62, 0.5, 0.38, 1.0)
FLOOR_COLOR = (0.28, 0.3, 0.33, 1.0)
BACKDROP_COLOR = (0.33, 0.38, 0.46, 1.0)


def low_poly_panda_urdf(out_dir: Path, data_path: Path) -> str:
    """Write pybullet_data's panda.urdf with the arm and hand drawn by their collision meshes.

    The shipped visual meshes hold ~100k triangles, which makes TinyRenderer (CPU) take ~25 ms
    per 96 px frame; the collision meshes (~300 triangles per link) keep the silhouette at a
    fraction of the cost. Kinematics, inertia and collision geometry are untouched; the fingers
    keep their visual mesh (small) so the wrist camera sees their real shape. Mesh paths become
    absolute because the copy lives outside pybullet_data.
    """
    meshes = data_path / "franka_panda" / "meshes"
    text = (data_path / "franka_panda" / "panda.urdf").read_text()
    for part in ("link1", "link2", "link3", "link4", "link5", "link6", "hand"):
        text = text.replace(
            f"package://meshes/visual/{part}.obj", f"package://meshes/collision/{part}.obj"
        )
    text = text.replace("package://meshes/", f"{meshes.as_posix()}/")
    path = out_dir / "panda_low_poly.urdf"
    path.write_text(text)
    return str(path)


@contextlib.contextmanager
def silenced_stdout(fds: tuple[int, ...] = (1,)) -> Iterator[None]:
    """Send file descriptors ``fds`` (default stdout) to /dev/null (C-level prints included).

    pybullet's C layer writes ``argv[0]=`` to stdout on every connection and its build time to
    stderr on import; library code must not print (STYLE.md habit 9), and a CLI's stdout may be
    parsed. Python-level output is flushed first and the C stdio buffers before restoring, so
    nothing leaks out afterwards.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(fd) for fd in fds]
    except OSError:  # no usable descriptor at all: nothing to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in fds:
        os.dup2(devnull, fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, AttributeError, TypeError):
            ctypes.CDLL(None).fflush(None)  # POSIX libc; flush what C printed into its buffer
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
