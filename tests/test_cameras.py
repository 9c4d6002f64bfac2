"""Cameras: the file-backed fake, OpenCV on a real video file, RealSense error paths.

The test video has 20 frames of 32x24 whose colour encodes the frame number (red rises, green
falls, blue constant), so every frame a camera delivers can be checked for order, content and
channel order despite codec noise.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from hardware.cameras import (
    CAMERAS,
    CameraConfig,
    CameraError,
    camera_features,
    make_camera,
)
from hardware.cameras.base import Capture
from robot_learning.config import ConfigError
from robot_learning.datasets.video import VideoEncoder, decode_video

W, H, N, STEP = 32, 24, 20, 12


def counter_image(i: int) -> np.ndarray:
    """Frame ``i`` of the test video: R = 12 i, G = 255 - 12 i, B = 90."""
    img = np.empty((H, W, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = STEP * i, 255 - STEP * i, 90
    return img


def counter_of(image: np.ndarray) -> int:
    """Frame number encoded in an RGB frame (robust to codec noise and resizing)."""
    return int(round(float(image[..., 0].mean()) / STEP))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cam") / "counter.mp4"
    enc = VideoEncoder(path, fps=20, shape=(H, W, 3))
    for i in range(N):
        enc.add(counter_image(i))
    enc.close()
    return path


def file_cam(video: Path, **kw):
    return make_camera(
        {"type": "file", "path": str(video), "width": W, "height": H, "fps": 50, **kw}, "wrist"
    )


def test_file_camera_delivers_frames_in_order_at_its_fps(video: Path) -> None:
    with file_cam(video) as cam:
        frames = [cam.read()]
        while frames[-1].index < N + 2:  # past the end: the file loops
            frames.append(cam.read())
        stats = cam.stats()
    idx = [f.index for f in frames]
    assert idx == sorted(set(idx)), "read() must return each frame once, in order"
    for f in frames:
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        assert counter_of(f.image) == f.index % N  # content follows the index, looping at N
    ts = np.array([f.timestamp_s for f in frames])
    assert np.all(np.diff(ts) > 0)
    period = (ts[-1] - ts[0]) / (idx[-1] - idx[0])
    # paced, not decoded as fast as possible (~0.2 ms a frame); loose upper bounds because the
    # test machine's cores are shared with other work
    assert 0.8 / 50 <= period <= 2.5 / 50
    assert 50 / 2.5 <= stats.fps <= 50 * 1.25
    assert abs(frames[-1].wall_time - time.time()) < 5
    assert frames[0].device_timestamp_s is None


def test_latest_returns_newest_and_raises_when_stale(video: Path) -> None:
    with file_cam(video) as cam:
        first = cam.read()
        deadline = time.monotonic() + 2
        while cam.stats().frames < first.index + 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        captured = cam.stats().frames
        newest = cam.latest()
        assert newest.index >= max(first.index + 3, captured - 1)  # the newest, not the next
        assert counter_of(newest.image) == newest.index % N
        with pytest.raises(CameraError, match="'wrist'.*old.*max_age_s=1e-06"):
            time.sleep(0.005)
            cam.latest(max_age_s=1e-6)

        def stalled() -> Capture:  # a frozen device: the grab never returns a frame
            cam._stop.wait()
            raise CameraError("stopped")

        cam._grab = stalled
        time.sleep(0.3)
        with pytest.raises(CameraError, match=r"'wrist'.*s old.*stalled"):
            cam.latest(max_age_s=0.15)
        stale = cam.latest(max_age_s=10)  # a generous limit still works
        assert stale.index >= newest.index
        assert cam.read().index == stale.index  # not yet read: returned once, then nothing new
        with pytest.raises(CameraError, match="no new frame within 0.1 s"):
            cam.read(timeout_s=0.1)


def test_read_failure_is_kept_and_reraised_with_the_fix(video: Path) -> None:
    cam = file_cam(video, fps=200, loop=False)
    with cam:
        deadline = time.monotonic() + 5
        while cam.reader_alive and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not cam.reader_alive, "the reader stops when the source fails"
        for call in (cam.latest, cam.read):
            with pytest.raises(CameraError, match="'wrist'.*ended.*loop: true"):
                call()


def test_slow_consumer_sees_only_the_newest_frames(video: Path) -> None:
    with file_cam(video, fps=100) as cam:
        start = cam.read()
        frames = []
        for _ in range(5):
            time.sleep(0.1)  # ~10 source frames per read (fewer when the machine is loaded)
            frames.append(cam.read())
            captured = cam.stats().frames
            assert frames[-1].index >= captured - 2  # the newest frame, not an old queued one
    idx = [start.index] + [f.index for f in frames]
    gaps = np.diff(idx)
    assert np.all(gaps >= 1)
    # a queue would hand out start+1, start+2, ...: gaps of 1 and frames ever older
    assert gaps.mean() >= 2.5, f"consumer got a backlog: indices {idx}"
    assert all(counter_of(f.image) == f.index % N for f in frames)


def test_disconnect_stops_the_reader_thread(video: Path) -> None:
    cam = file_cam(video)
    assert not cam.is_connected and not cam.reader_alive  # no side effects before connect()
    cam.connect()
    thread = cam._thread
    assert thread is not None and thread.is_alive() and thread.daemon
    cam.disconnect()
    assert not thread.is_alive() and not cam.reader_alive
    cam.disconnect()  # idempotent
    with pytest.raises(CameraError, match="not connected"):
        cam.latest()
    with cam:  # reconnects, numbering restarts
        assert cam.read().index == 0


def test_size_mismatch_names_the_size_the_source_gives(video: Path) -> None:
    with pytest.raises(CameraError, match="gives 32x24.*64x48.*resize: true"):
        file_cam(video, width=64, height=48).connect()
    with file_cam(video, width=64, height=48, resize=True, color="bgr") as cam:
        frame = cam.read()
    assert frame.image.shape == (48, 64, 3)
    rgb = frame.image[..., ::-1]
    assert counter_of(rgb) == frame.index % N
    assert abs(int(rgb[..., 2].mean()) - 90) <= 4  # channel order reversed for color: bgr


def test_file_camera_plays_an_image_folder(tmp_path: Path) -> None:
    import imageio.v3 as iio

    for i in range(3):
        iio.imwrite(tmp_path / f"{i:03d}.png", counter_image(i))
    (tmp_path / "notes.txt").write_text("ignored")
    cfg = {"type": "file", "path": str(tmp_path), "width": W, "height": H, "fps": 100}
    with make_camera(cfg, "top") as cam:
        got = [cam.read(timeout_s=1) for _ in range(3)]
    assert all(np.array_equal(f.image, counter_image(f.index % 3)) for f in got)  # PNG: lossless


def test_file_camera_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no such file"):
        make_camera({"type": "file", "path": str(tmp_path / "missing.mp4")}).connect()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(CameraError, match="bad.mp4.*not a readable video"):
        make_camera({"type": "file", "path": str(bad)}).connect()


# ---------------------------------------------------------------------------------- OpenCV
def test_opencv_reads_the_video_file_as_rgb(video: Path) -> None:
    pytest.importorskip(
        "cv2", reason="opencv not installed (pip install 'robot-learning[cameras]')"
    )
    reference = decode_video(video, fps=20)  # PyAV's decode of the same stream
    cfg = {"type": "opencv", "source": str(video), "width": W, "height": H, "fps": 100}
    with make_camera(cfg, "front") as cam:
        frames = [cam.read() for _ in range(8)]
    for f in frames:
        i = counter_of(f.image)
        assert i == f.index  # a file is played in order from its start
        assert np.abs(f.image.astype(int) - reference[i].astype(int)).max() <= 6
        # RGB, not OpenCV's BGR: red carries the counter, blue is the constant 90
        assert np.abs(f.image.astype(int) - counter_image(i).astype(int)).mean() <= 4


def test_opencv_size_mismatch_names_what_the_device_gave(video: Path) -> None:
    pytest.importorskip(
        "cv2", reason="opencv not installed (pip install 'robot-learning[cameras]')"
    )
    cfg = {"type": "opencv", "source": str(video), "width": 640, "height": 480}
    with pytest.raises(CameraError, match="gives 32x24, not the requested 640x480.*resize: true"):
        make_camera(cfg).connect()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/video* naming is Linux")
def test_opencv_missing_device_names_the_fix() -> None:
    cam = make_camera({"type": "opencv", "source": 99}, "wrist")
    with pytest.raises(CameraError) as err:
        cam.connect()
    msg = str(err.value)
    assert "'wrist'" in msg and "/dev/video99" in msg
    assert "video devices found: /dev/video" in msg or "no /dev/video* devices found" in msg
    assert not cam.is_connected and not cam.reader_alive


def test_opencv_missing_library_names_the_extra(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    with pytest.raises(CameraError, match=r"pip install 'robot-learning\[cameras\]'"):
        make_camera({"type": "opencv", "source": str(video), "width": W, "height": H}).connect()


# ---------------------------------------------------------------------------------- RealSense
def _fake_rs(devices: list[tuple[str, str]]) -> types.ModuleType:
    """A pyrealsense2 stand-in that only enumerates devices (serial, name)."""

    class Device:
        def __init__(self, serial: str, name: str) -> None:
            self.info = {"serial_number": serial, "name": name}

        def get_info(self, key: str) -> str:
            return self.info[key]

    mod = types.ModuleType("pyrealsense2")
    mod.camera_info = types.SimpleNamespace(serial_number="serial_number", name="name")
    mod.context = lambda: types.SimpleNamespace(query_devices=lambda: [Device(*d) for d in devices])
    return mod


def test_realsense_errors_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(CameraError, match=r"pyrealsense2 is not installed.*\[realsense\]"):
        make_camera({"type": "realsense"}, "wrist").connect()
    monkeypatch.setitem(sys.modules, "pyrealsense2", _fake_rs([]))
    with pytest.raises(CameraError, match="no RealSense device found.*USB 3.*udev"):
        make_camera({"type": "realsense"}, "wrist").connect()
    two = [("111", "Intel RealSense D435"), ("222", "Intel RealSense D405")]
    monkeypatch.setitem(sys.modules, "pyrealsense2", _fake_rs(two))
    with pytest.raises(CameraError, match="2 RealSense devices found.*111.*222.*set serial"):
        make_camera({"type": "realsense"}).connect()
    with pytest.raises(CameraError, match="no RealSense device with serial 333.*111 \\(Intel"):
        make_camera({"type": "realsense", "serial": 333}).connect()


def _real_rs_devices() -> int:
    rs = pytest.importorskip(
        "pyrealsense2",
        reason="pyrealsense2 not installed (pip install 'robot-learning[realsense]')",
    )
    return len(rs.context().query_devices())


def test_realsense_sdk_without_a_device_names_the_fix() -> None:
    if _real_rs_devices():
        pytest.skip("a RealSense device is connected: the no-device path cannot be exercised")
    with pytest.raises(CameraError, match="no RealSense device found.*rs-enumerate-devices"):
        make_camera({"type": "realsense"}, "wrist").connect()


def test_realsense_streams_timestamped_rgb_and_depth() -> None:
    if not _real_rs_devices():
        pytest.skip("no RealSense device connected (pyrealsense2 lists none)")
    cfg = {"type": "realsense", "width": 640, "height": 480, "fps": 30, "depth": True}
    with make_camera(cfg, "wrist") as cam:
        a, b = cam.read(), cam.read()
    assert a.image.shape == (480, 640, 3) and b.index > a.index
    assert b.device_timestamp_s > a.device_timestamp_s
    assert a.depth is not None and a.depth.shape == (480, 640) and a.depth.dtype == np.float32


# ---------------------------------------------------------------------------------- configs
def test_configs_features_and_registry() -> None:
    assert {"opencv", "realsense", "file"} <= set(CAMERAS.names())
    cams = {
        "wrist": make_camera({"type": "opencv", "source": "/dev/video0"}, "wrist").cfg,
        "top": CameraConfig(width=96, height=72),
    }
    feats = camera_features(cams)
    assert list(feats) == ["observation.images.wrist", "observation.images.top"]
    assert feats["observation.images.top"].shape == (72, 96, 3)
    assert feats["observation.images.top"].dtype == "video"
    assert feats["observation.images.wrist"].names == ("height", "width", "channels")
    cam = make_camera({"type": "file", "path": "x.mp4", "width": 8, "height": 6}, "side")
    assert cam.key == "observation.images.side" and cam.features().shape == (6, 8, 3)
    with pytest.raises(ConfigError, match="cameras.side.widht"):
        make_camera({"type": "file", "path": "x.mp4", "widht": 8}, "side")
    with pytest.raises(ConfigError, match="fps"):
        make_camera({"type": "opencv", "fps": 0}, "side")
    with pytest.raises(KeyError, match="Unknown camera 'kinect'.*opencv"):
        make_camera({"type": "kinect"})
