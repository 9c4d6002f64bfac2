"""``type: file``: a fake camera that plays a video file or a folder of images as a live stream.

Frames come through the same background reader as a real camera, paced at the config's ``fps``
(not the file's), so timestamps, ``latest()``, skipped frames and staleness behave as on a robot.
Videos are decoded with PyAV one frame at a time (never the whole file in memory); image folders
(PNG/JPEG, sorted by name) are read with imageio. The source loops unless ``loop: false``, in which
case its end is reported like a camera that stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardware.cameras.base import CAMERAS, Camera, CameraConfig, CameraError, Capture, Pacer

#: image files a folder source may hold
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class FileCameraConfig(CameraConfig):
    """``type: file`` settings."""

    type: str = "file"
    """Registered driver name."""
    path: str = ""
    """A video file (mp4, mkv, ...) or a folder of PNG/JPEG images (played in name order)."""
    loop: bool = True
    """Start again at the end; False: the camera fails (like an unplugged one) after the last."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ValueError("camera type=file needs path: a video file or a folder of images")


@CAMERAS.register("file")
class FileCamera(Camera):
    """Plays ``path`` as if it were a live camera (see the module docstring)."""

    kind = "file"
    config_class = FileCameraConfig
    cfg: FileCameraConfig

    def __init__(self, cfg: FileCameraConfig, name: str = "camera") -> None:
        super().__init__(cfg, name)
        self._frames: Iterator[np.ndarray] | None = None
        self._pacer: Pacer | None = None
        self._images: list[Path] = []
        self._first: np.ndarray | None = None
        self.plays = 0
        """How many times the source has been started (1 + the number of loops)."""

    def describe(self) -> str:
        return f"camera {self.name!r} (file {self.cfg.path})"

    def _open(self) -> None:
        path = Path(self.cfg.path).expanduser()
        if path.is_dir():
            self._images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._images:
                raise CameraError(
                    f"{self.describe()}: the folder holds no {'/'.join(IMAGE_SUFFIXES)} images"
                )
        elif not path.is_file():
            raise CameraError(
                f"{self.describe()}: no such file or folder; set path to a video or image folder"
            )
        self._pacer = Pacer(self.cfg.fps, self._stop)
        self.plays = 0
        self._frames = self._play()
        # decode one frame now so a file that is not a video fails in connect(), not later
        self._first = next(self._frames, None)
        if self._first is None:
            raise CameraError(f"{self.describe()}: the source has no frames")

    def _play(self) -> Iterator[np.ndarray]:
        """Frames of the source, looping if configured (runs in the reader thread)."""
        while True:
            self.plays += 1
            count = 0
            for image in self._images_once() if self._images else self._video_once():
                count += 1
                yield image
            if count == 0 or not self.cfg.loop:
                return

    def _images_once(self) -> Iterator[np.ndarray]:
        import imageio.v3 as iio

        for p in self._images:
            yield np.asarray(iio.imread(p, mode="RGB"))

    def _video_once(self) -> Iterator[np.ndarray]:
        import av

        try:
            container = av.open(str(Path(self.cfg.path).expanduser()))
        except av.error.FFmpegError as exc:
            raise CameraError(f"{self.describe()}: not a readable video ({exc})") from exc
        try:
            if not container.streams.video:
                raise CameraError(f"{self.describe()}: the file has no video stream")
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        finally:
            container.close()

    def _grab(self) -> Capture:
        assert self._frames is not None and self._pacer is not None
        image, self._first = self._first, None
        if image is None:
            image = next(self._frames, None)
        if image is None:
            raise CameraError(
                f"{self.describe()}: the source ended (loop: false); reconnect to play it again "
                "or set loop: true"
            )
        self._pacer.wait()  # a live camera delivers a frame per period, not as fast as decoding
        return Capture(image)

    def _close(self) -> None:
        frames, self._frames = self._frames, None
        if frames is not None:
            frames.close()  # closes the open container through the generator's finally
