"""Camera streams as mp4 files, encoded and decoded with PyAV.

Encoding is streaming (:class:`VideoEncoder` takes one frame at a time), so an episode's frames are
never all held in memory. Defaults: H.264 (``libx264``), ``yuv420p`` (``yuv444p`` when a side is
odd, which 4:2:0 cannot represent), constant quality ``crf=18`` and a keyframe every 2 frames
(LeRobot's ``g=2``, so its random-access loaders seek cheaply), no B-frames (decode order equals
presentation order). Frame ``i`` has presentation time ``i / fps``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from robot_learning.datasets.atomic import fsync_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoSettings:
    """How camera streams are encoded."""

    codec: str = "libx264"
    """FFmpeg encoder: ``libx264`` (H.264) or ``libsvtav1`` (AV1, smaller, slower)."""
    crf: int = 18
    """Constant rate factor; lower is better quality (18 is visually lossless for H.264)."""
    gop: int = 2
    """Keyframe interval in frames (LeRobot uses 2 for cheap random access)."""
    preset: str | None = "veryfast"
    """x264 speed preset (ignored by other encoders)."""

    def __post_init__(self) -> None:
        if self.codec not in ("libx264", "libsvtav1"):
            raise ValueError(
                f"VideoSettings.codec must be 'libx264' or 'libsvtav1', got {self.codec!r}"
            )
        if not 0 <= self.crf <= 63 or self.gop < 1:
            raise ValueError(
                f"VideoSettings: crf must be in [0, 63] and gop >= 1, got {self.crf}, {self.gop}"
            )


class VideoEncoder:
    """Write frames of one camera to ``path`` as they arrive.

    Args:
        path: output ``.mp4`` file (created; parent must exist).
        fps: frame rate; frame ``i`` gets timestamp ``i / fps``.
        shape: ``(H, W, C)`` of every frame, ``C`` in (1, 3); uint8.
        settings: codec options.
    """

    def __init__(
        self, path: Path, fps: int, shape: tuple[int, ...], settings: VideoSettings | None = None
    ):
        settings = settings or VideoSettings()
        self.path = Path(path)
        self.shape = tuple(shape)
        height, width, _ = self.shape
        self.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
        self.num_frames = 0
        self._container = av.open(str(self.path), "w", format="mp4")
        try:
            stream = self._container.add_stream(settings.codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, self.pix_fmt
            stream.time_base = Fraction(1, fps)
            options = {"crf": str(settings.crf), "g": str(settings.gop)}
            if settings.codec == "libx264":
                options["bf"] = "0"
                if settings.preset:
                    options["preset"] = settings.preset
            stream.options = options
        except Exception:
            self._container.close()
            raise
        self._stream = stream
        # one reformatter for the whole stream: a fresh conversion context per frame costs
        # more than encoding a small frame
        self._reformatter = VideoReformatter()

    def add(self, frame: np.ndarray) -> None:
        """Encode one ``(H, W, C)`` uint8 frame."""
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(
                f"video frame must be uint8 {self.shape}, got {frame.dtype} {frame.shape}"
            )
        rgb = np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame
        vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        vframe = self._reformatter.reformat(vframe, format=self.pix_fmt)
        vframe.pts = self.num_frames
        for packet in self._stream.encode(vframe):
            self._container.mux(packet)
        self.num_frames += 1

    def close(self) -> int:
        """Flush the encoder, close and fsync the file; returns the number of frames."""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        fsync_path(self.path)
        return self.num_frames

    def abort(self) -> None:
        """Close without flushing and delete the partial file."""
        try:
            self._container.close()
        except Exception:  # a half-written container may fail to finalise; it is deleted anyway
            log.debug("closing aborted video %s failed", self.path, exc_info=True)
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class VideoProbe:
    """Container-level facts about an mp4 (read by demuxing, without decoding pixels)."""

    frame_times: tuple[float, ...]
    """Presentation time in seconds of every video packet (one per frame), sorted."""
    width: int
    height: int
    codec: str
    pix_fmt: str | None
    fps: int

    @property
    def num_frames(self) -> int:
        """Frames in the file."""
        return len(self.frame_times)

    def frames_between(self, from_s: float, to_s: float) -> int:
        """Frames with timestamps in ``[from_s, to_s)`` (half a frame of tolerance)."""
        tol = 0.5 / max(self.fps, 1)
        return sum(1 for t in self.frame_times if from_s - tol <= t < to_s - tol)


def probe_video(path: Path) -> VideoProbe:
    """Demux every packet and read stream parameters; raises on an unreadable file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:  # end-of-stream marker
                continue
            times.append(float(packet.pts * stream.time_base))
        ctx = stream.codec_context
        if ctx is None:
            raise ValueError("no decodable video stream")
        return VideoProbe(
            frame_times=tuple(sorted(times)),
            width=ctx.width,
            height=ctx.height,
            codec=ctx.codec.canonical_name,
            pix_fmt=ctx.pix_fmt,
            fps=int(round(float(stream.base_rate or stream.average_rate or 0))),
        )


def video_info(path: Path) -> dict[str, Any]:
    """The ``info`` entry LeRobot records for a video feature in ``meta/info.json``."""
    probe = probe_video(path)
    return {
        "video.height": probe.height,
        "video.width": probe.width,
        "video.codec": probe.codec,
        "video.pix_fmt": probe.pix_fmt,
        "video.is_depth_map": False,
        "video.fps": probe.fps,
        "video.channels": 3,
        "has_audio": False,
    }


def decode_video(
    path: Path, fps: int, from_s: float = 0.0, to_s: float | None = None, channels: int = 3
) -> np.ndarray:
    """Decode the frames with timestamps in ``[from_s, to_s)`` as ``[T, H, W, C]`` uint8.

    Timestamps are matched with half a frame of tolerance. Seeks first when ``from_s > 0``
    (several episodes in one file, as LeRobot's own writer produces).
    """
    tol = 0.5 / fps
    frames = []
    reformatter = VideoReformatter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.width * stream.codec_context.height >= 320 * 240:
            stream.thread_type = "AUTO"  # frame threads only pay off on larger frames
        if from_s > tol:
            container.seek(int(from_s / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = frame.time
            if t is None or t < from_s - tol:
                continue
            if to_s is not None and t >= to_s - tol:
                break
            frames.append(reformatter.reformat(frame, format="rgb24").to_ndarray())
    if not frames:
        raise ValueError(f"{path}: no frames in [{from_s:.3f}, {to_s}) s")
    out = np.stack(frames)
    return out[..., :1] if channels == 1 else out
