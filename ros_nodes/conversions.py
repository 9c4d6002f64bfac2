"""numpy <-> ROS 2 messages for the feature contract, with errors that name what is wrong.

* A state vector is a ``sensor_msgs/JointState``: ``name`` lists the feature's element names,
  ``position`` the values. Reading selects elements **by name**, so a robot may publish its
  joints in any order (and extra joints); a missing name is an error listing it.
* A camera frame is a ``sensor_msgs/Image`` in ``rgb8`` (``mono8`` for one-channel features);
  ``bgr8``, ``rgba8``/``bgra8`` and ``mono8`` are accepted on input and converted.
* An action chunk ``[k, A]`` is a ``trajectory_msgs/JointTrajectory``: ``joint_names`` are the
  action's element names, ``points[i].positions`` action ``i``, ``time_from_start`` = ``i * dt``.

Stamps are integer nanoseconds of the ROS clock (``stamp_to_ns`` / ``ns_to_stamp``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_learning.features import Feature

#: Image encodings accepted on input -> (channels, channel order to reach RGB)
IMAGE_ENCODINGS = {
    "rgb8": (3, None),
    "bgr8": (3, [2, 1, 0]),
    "rgba8": (4, [0, 1, 2]),
    "bgra8": (4, [2, 1, 0]),
    "mono8": (1, None),
}


class ConversionError(ValueError):
    """A message does not fit the feature it should feed; the message says how."""


def stamp_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds -> ``builtin_interfaces/Time``."""
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def element_names(key: str, feature: Feature) -> tuple[str, ...]:
    """Names of a 1-D feature's elements: its declared names, else ``<last key part>_<i>``."""
    size = int(np.prod(feature.shape))
    if feature.names is not None and len(feature.names) == size:
        return tuple(feature.names)
    base = key.rsplit(".", 1)[-1]
    return tuple(f"{base}_{i}" for i in range(size))


# ---------------------------------------------------------------------- state <-> JointState
def state_to_joint_state(
    values: np.ndarray, names: Sequence[str], stamp_ns: int, frame_id: str = ""
) -> JointState:
    """A state vector as ``JointState`` (``name`` = ``names``, ``position`` = values)."""
    values = np.asarray(values, np.float64).ravel()
    if values.size != len(names):
        raise ConversionError(
            f"state has {values.size} values but {len(names)} names {list(names)}"
        )
    msg = JointState()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.name = list(names)
    msg.position = values.tolist()
    return msg


def joint_state_to_state(msg: JointState, names: Sequence[str]) -> np.ndarray:
    """The positions of ``names`` (in that order) from ``msg``, as float32; selects by name."""
    if len(msg.position) != len(msg.name):
        raise ConversionError(
            f"JointState has {len(msg.name)} names but {len(msg.position)} positions"
        )
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ConversionError(f"JointState lacks joints {missing} (it has {list(msg.name)})")
    position = np.asarray(msg.position, np.float64)
    return position[[index[n] for n in names]].astype(np.float32)


# ---------------------------------------------------------------------- image <-> Image
def image_to_msg(frame: np.ndarray, stamp_ns: int, frame_id: str = "") -> Image:
    """A uint8 ``(H, W, C)`` frame as ``Image`` (``rgb8`` for C=3, ``mono8`` for C=1)."""
    frame = np.ascontiguousarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (1, 3):
        raise ConversionError(
            f"camera frames must be uint8 (H, W, 1|3), got {frame.dtype} {frame.shape}"
        )
    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
    msg.encoding = "rgb8" if frame.shape[2] == 3 else "mono8"
    msg.is_bigendian = 0
    msg.step = int(frame.shape[1] * frame.shape[2])
    msg.data = frame.tobytes()
    return msg


def msg_to_image(msg: Image, channels: int = 3) -> np.ndarray:
    """``Image`` -> uint8 ``(H, W, channels)`` RGB (or mono); see :data:`IMAGE_ENCODINGS`."""
    if msg.encoding not in IMAGE_ENCODINGS:
        raise ConversionError(
            f"image encoding {msg.encoding!r} is not supported; use one of {sorted(IMAGE_ENCODINGS)}"
        )
    source_channels, order = IMAGE_ENCODINGS[msg.encoding]
    row = msg.width * source_channels
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise ConversionError(
            f"{msg.encoding} image {msg.width}x{msg.height} needs step >= {row} and "
            f"{row * msg.height} bytes; got step {msg.step}, {len(msg.data)} bytes"
        )
    raw = np.frombuffer(bytes(msg.data), np.uint8, count=msg.step * msg.height).reshape(
        msg.height, msg.step
    )
    frame = raw[:, :row].reshape(msg.height, msg.width, source_channels)
    if order is not None:
        frame = frame[..., order]
    if channels == frame.shape[2]:
        return np.ascontiguousarray(frame)
    if channels == 3 and frame.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(frame, 3, axis=2))
    if channels == 1 and frame.shape[2] == 3:  # ITU-R BT.601 luma
        luma = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    raise ConversionError(
        f"cannot convert a {frame.shape[2]}-channel {msg.encoding} image to {channels} channels"
    )


# ---------------------------------------------------------------------- action chunk <-> JointTrajectory
def chunk_to_trajectory(
    actions: np.ndarray, names: Sequence[str], stamp_ns: int, dt: float
) -> JointTrajectory:
    """Actions ``[k, A]`` as a ``JointTrajectory``: point ``i`` at ``time_from_start = i * dt``."""
    actions = np.asarray(actions, np.float64)
    if actions.ndim != 2 or actions.shape[1] != len(names):
        raise ConversionError(
            f"action chunk must be [k, {len(names)}] for joints {list(names)}, got {list(actions.shape)}"
        )
    msg = JointTrajectory()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.joint_names = list(names)
    for i, action in enumerate(actions):
        ns = int(round(i * dt * 1e9))
        msg.points.append(
            JointTrajectoryPoint(
                positions=action.tolist(),
                time_from_start=Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000),
            )
        )
    return msg


def trajectory_to_chunk(msg: JointTrajectory, names: Sequence[str]) -> np.ndarray:
    """Positions of ``names`` from every point of ``msg`` -> float32 ``[k, A]``; selects by name."""
    index = {name: i for i, name in enumerate(msg.joint_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ConversionError(
            f"JointTrajectory lacks joints {missing} (it has {list(msg.joint_names)})"
        )
    if not msg.points:
        raise ConversionError("JointTrajectory has no points")
    width = len(msg.joint_names)
    bad = [i for i, p in enumerate(msg.points) if len(p.positions) != width]
    if bad:
        raise ConversionError(f"JointTrajectory points {bad} do not have {width} positions")
    positions = np.asarray([p.positions for p in msg.points], np.float64)
    return positions[:, [index[n] for n in names]].astype(np.float32)
