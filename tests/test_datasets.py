"""LeRobotDataset v3.0 writer/reader/validator/visualiser on synthetic features."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from robot_learning.datasets import (
    DatasetError,
    LeRobotDataset,
    LeRobotDatasetWriter,
    check_dataset,
    dataset_info,
    validate_dataset,
    visualize_dataset,
)
from robot_learning.datasets.video import VideoEncoder, probe_video
from robot_learning.features import Feature, FeatureMismatchError, FeatureSpec

FPS = 10
LENGTHS = (12, 20, 15)
TASKS = ("pick the cube", "pick the cube", "place the cube")
SPEC = FeatureSpec(
    {
        "observation.state": Feature("float32", (5,), names=("x", "y", "z", "g", "t")),
        "observation.images.front": Feature("video", (48, 64, 3)),
        "observation.images.wrist": Feature("video", (32, 32, 3)),
        "action": Feature("float32", (3,), low=-1.0, high=1.0, control_mode="ee_delta_pos"),
        "next.reward": Feature("float32", (1,)),
        "next.done": Feature("bool", (1,)),
        "next.success": Feature("bool", (1,)),
    }
)
STATE_SPEC = SPEC.select(["observation.state", "action", "next.reward", "next.done"])


def smooth_image(shape: tuple[int, ...], ep: int, t: int) -> np.ndarray:
    """A low-frequency colour pattern drifting over time (codec-friendly, like a camera)."""
    h, w, c = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = [
        128 + 80 * np.sin(xx / 11 + t / 6 + ep),
        128 + 80 * np.cos(yy / 9 - t / 7),
        128 + 60 * np.sin((xx + yy) / 15 + t / 4 + 2 * ep),
    ]
    return np.stack(chans[:c], axis=-1).round().astype(np.uint8)


def make_frame(spec: FeatureSpec, ep: int, t: int, length: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1000 * ep + t)
    frame = {}
    for key, feat in spec.items():
        if feat.is_image:
            frame[key] = smooth_image(feat.shape, ep, t)
        elif feat.dtype == "bool":
            frame[key] = np.array([t == length - 1])
        else:
            frame[key] = rng.uniform(-2, 2, size=feat.shape).astype(np.float32)
    return frame


def write(
    root: Path, spec: FeatureSpec = SPEC, lengths=LENGTHS, tasks=TASKS, resume=False, first_ep=0
):
    """Write episodes; returns the frames per episode as written."""
    written = []
    with LeRobotDatasetWriter.create(
        root, spec, fps=FPS, robot_type="synthetic", resume=resume
    ) as w:
        for i, (length, task) in enumerate(zip(lengths, tasks, strict=True)):
            frames = [make_frame(spec, first_ep + i, t, length) for t in range(length)]
            for f in frames:
                w.add_frame(f, task=task)
            assert w.save_episode() == first_ep + i
            written.append(frames)
    return written


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("base") / "ds"
    return root, write(root)


@pytest.fixture()
def copy(base, tmp_path) -> Path:
    dst = tmp_path / "ds"
    shutil.copytree(base[0], dst)
    return dst


def stack(frames, key):
    return np.stack([f[key] for f in frames])


# ---------------------------------------------------------------- round trip


def test_round_trip_values_frames_and_bookkeeping(base):
    root, written = base
    ds = LeRobotDataset(root)
    assert ds.features == SPEC  # bounds, names, control mode survive; images keep names=None
    assert (ds.num_episodes, ds.num_frames, len(ds)) == (3, sum(LENGTHS), sum(LENGTHS))
    assert ds.episode_lengths == list(LENGTHS) and ds.fps == FPS
    assert ds.tasks == ["pick the cube", "place the cube"]
    start = 0
    for i, frames in enumerate(written):
        ep = ds.episode(i)
        for key in ("observation.state", "action", "next.reward", "next.done", "next.success"):
            np.testing.assert_array_equal(ep[key], stack(frames, key), err_msg=key)
            assert ep[key].dtype == SPEC[key].numpy_dtype
        for key in SPEC.image_keys:
            assert ep[key].shape == (LENGTHS[i], *SPEC[key].shape) and ep[key].dtype == np.uint8
            err = np.abs(ep[key].astype(np.int16) - stack(frames, key)).mean()
            assert err < 3.0, (key, err)
        np.testing.assert_array_equal(ep["frame_index"], np.arange(LENGTHS[i]))
        np.testing.assert_array_equal(ep["index"], np.arange(start, start + LENGTHS[i]))
        np.testing.assert_allclose(ep["timestamp"], np.arange(LENGTHS[i]) / FPS, atol=1e-6)
        assert (ep["episode_index"] == i).all() and set(ep["task"]) == {TASKS[i]}
        start += LENGTHS[i]
    item = ds[LENGTHS[0] + 3]  # frame 3 of episode 1
    np.testing.assert_array_equal(item["action"], written[1][3]["action"])
    assert item["observation.images.front"].shape == (48, 64, 3)
    assert (
        int(item["episode_index"]) == 1
        and int(item["frame_index"]) == 3
        and item["task"] == TASKS[1]
    )
    assert ds[-1]["index"] == sum(LENGTHS) - 1
    with pytest.raises(IndexError):
        ds[sum(LENGTHS)]
    assert validate_dataset(root, deep=True) == []
    assert check_dataset(root).notes == []


def test_on_disk_layout_matches_lerobot_v30(base):
    root, _ = base
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "synthetic"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert (
        info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    )
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 47, 2)
    assert info["splits"] == {"train": "0:3"} and info["chunks_size"] == 1000
    front = info["features"]["observation.images.front"]
    assert front["names"] == ["height", "width", "channels"]
    assert front["info"]["video.codec"] == "h264" and front["info"]["video.pix_fmt"] == "yuv420p"
    assert front["info"]["video.fps"] == FPS and front["info"]["video.height"] == 48
    assert list(info["features"])[-5:] == [
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ]
    schema = pq.read_schema(root / "data/chunk-000/file-001.parquet")
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 5)
    assert schema.field("next.reward").type == pa.float32()
    assert schema.field("next.done").type == pa.bool_()
    assert schema.field("index").type == pa.int64()
    assert "observation.images.front" not in schema.names
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.column_names == ["task_index", "__index_level_0__"]
    assert b"pandas" in tasks.schema.metadata
    row = pq.read_table(root / "meta/episodes/chunk-000/file-002.parquet").to_pylist()[0]
    assert row["episode_index"] == 2 and row["length"] == 15 and row["tasks"] == ["place the cube"]
    assert (row["dataset_from_index"], row["dataset_to_index"]) == (32, 47)
    assert (row["data/chunk_index"], row["data/file_index"]) == (0, 2)
    assert row["videos/observation.images.wrist/file_index"] == 2
    assert row["videos/observation.images.wrist/to_timestamp"] == pytest.approx(1.5)
    assert (row["meta/episodes/chunk_index"], row["meta/episodes/file_index"]) == (0, 2)
    assert len(row["stats/action/mean"]) == 3 and row["stats/action/count"] == [15]
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.asarray(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert np.asarray(stats["next.reward"]["mean"]).shape == (1,)
    assert not list(root.glob(".staging")) and not (root / ".lock").exists()


def test_stats_match_numpy_over_all_frames(base):
    root, written = base
    ds = LeRobotDataset(root)
    frames = [f for ep in written for f in ep]
    for key in ("observation.state", "action", "next.reward", "next.done"):
        values = stack(frames, key).astype(np.float64)
        st = ds.stats[key]
        np.testing.assert_allclose(st["mean"], values.mean(0), rtol=1e-10, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(st["std"], values.std(0), rtol=1e-9, atol=1e-12, err_msg=key)
        np.testing.assert_array_equal(st["min"], values.min(0))
        np.testing.assert_array_equal(st["max"], values.max(0))
        assert st["count"].tolist() == [len(frames)]
    np.testing.assert_allclose(ds.stats["index"]["mean"], [(len(frames) - 1) / 2])
    for key in SPEC.image_keys:  # every frame is sampled below 100 frames per episode
        pixels = stack(frames, key).reshape(-1, 3) / 255.0
        st = ds.stats[key]
        np.testing.assert_allclose(st["mean"].ravel(), pixels.mean(0), rtol=1e-9)
        np.testing.assert_allclose(st["std"].ravel(), pixels.std(0), rtol=1e-9)
        np.testing.assert_allclose(st["max"].ravel(), pixels.max(0))
        assert st["mean"].shape == (3, 1, 1) and 0 <= st["min"].min() <= st["max"].max() <= 1


def test_odd_sizes_grayscale_and_png_images(tmp_path):
    spec = FeatureSpec(
        {
            "observation.images.odd": Feature("video", (15, 21, 3)),
            "observation.images.gray": Feature("video", (16, 16, 1)),
            "observation.images.png": Feature("image", (10, 12, 3)),
            "observation.state": Feature("float64", (2,)),
            "action": Feature("float32", (2,)),
        }
    )
    written = write(tmp_path / "ds", spec, lengths=(6,), tasks=("t",))[0]
    ds = LeRobotDataset(tmp_path / "ds")
    ep = ds.episode(0)
    np.testing.assert_array_equal(
        ep["observation.images.png"], stack(written, "observation.images.png")
    )
    np.testing.assert_array_equal(ep["observation.state"], stack(written, "observation.state"))
    for key in ("observation.images.odd", "observation.images.gray"):
        assert ep[key].shape == (6, *spec[key].shape)
        assert np.abs(ep[key].astype(np.int16) - stack(written, key)).mean() < 3.0
    assert ds.info["features"]["observation.images.odd"]["info"]["video.pix_fmt"] == "yuv444p"
    assert ds.stats["observation.images.gray"]["mean"].shape == (1, 1, 1)
    assert validate_dataset(tmp_path / "ds") == []


def _pack_like_lerobot(root: Path) -> None:
    """Rewrite a dataset the way LeRobot's own writer lays it out: all episodes in one data
    file, one mp4 per camera (episodes back to back) and one episodes-metadata file."""
    ds = LeRobotDataset(root)
    episodes = [ds.episode(i) for i in range(ds.num_episodes)]
    data_files = sorted((root / "data").glob("*/*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in data_files])
    for p in data_files:
        p.unlink()
    pq.write_table(table, root / "data/chunk-000/file-000.parquet")
    for key in ds.camera_keys:
        for p in (root / "videos" / key).glob("*/*.mp4"):
            p.unlink()
        enc = VideoEncoder(root / f"videos/{key}/chunk-000/file-000.mp4", FPS, SPEC[key].shape)
        for ep in episodes:
            for frame in ep[key]:
                enc.add(frame)
        enc.close()
    meta_files = sorted((root / "meta/episodes").glob("*/*.parquet"))
    rows = [r for p in meta_files for r in pq.read_table(p).to_pylist()]
    start = 0.0
    for row in rows:
        row["data/file_index"] = row["meta/episodes/file_index"] = 0
        for key in ds.camera_keys:
            row[f"videos/{key}/file_index"] = 0
            row[f"videos/{key}/from_timestamp"] = start
            row[f"videos/{key}/to_timestamp"] = start + row["length"] / FPS
        start += row["length"] / FPS
    for p in meta_files:
        p.unlink()
    pq.write_table(pa.Table.from_pylist(rows), root / "meta/episodes/chunk-000/file-000.parquet")


def test_reads_and_extends_lerobot_multi_episode_files(copy, base):
    _, written = base
    _pack_like_lerobot(copy)
    assert validate_dataset(copy, deep=True) == []
    ds = LeRobotDataset(copy)
    for i, frames in enumerate(written):
        ep = ds.episode(i)
        np.testing.assert_array_equal(ep["action"], stack(frames, "action"))
        assert ep["observation.images.front"].shape[0] == LENGTHS[i]
        assert (
            np.abs(
                ep["observation.images.front"].astype(np.int16)
                - stack(frames, "observation.images.front")
            ).mean()
            < 4
        )
    more = write(copy, lengths=(5,), tasks=("place the cube",), resume=True, first_ep=3)[0]
    assert sorted(p.name for p in (copy / "data/chunk-000").iterdir()) == [
        "file-000.parquet",
        "file-001.parquet",
    ]
    assert validate_dataset(copy) == []
    ds = LeRobotDataset(copy)
    assert ds.episode_lengths == [*LENGTHS, 5]
    np.testing.assert_array_equal(ds.episode(3)["action"], stack(more, "action"))


# ---------------------------------------------------------------- writer API


def test_resume_appends_and_aggregates_stats(tmp_path):
    root = tmp_path / "ds"
    first = write(root, lengths=(8, 9), tasks=("a", "b"))
    more = write(root, lengths=(7,), tasks=("c",), resume=True, first_ep=2)
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 3 and ds.episode_lengths == [8, 9, 7] and ds.tasks == ["a", "b", "c"]
    np.testing.assert_array_equal(ds.episode(2)["index"], np.arange(17, 24))
    actions = stack([f for ep in first + more for f in ep], "action").astype(np.float64)
    np.testing.assert_allclose(ds.stats["action"]["std"], actions.std(0), rtol=1e-9)
    assert ds.stats["action"]["count"].tolist() == [24]
    assert validate_dataset(root) == []
    with LeRobotDatasetWriter.create(root, SPEC, fps=FPS, resume=True) as w:
        assert (w.num_episodes, w.num_frames) == (3, 24)


def test_resume_with_different_features_or_fps_raises(tmp_path):
    root = tmp_path / "ds"
    write(root, lengths=(4,), tasks=("a",))
    other = FeatureSpec({**SPEC.features, "action": Feature("float32", (4,))})
    with pytest.raises(FeatureMismatchError, match="'action'"):
        LeRobotDatasetWriter.create(root, other, fps=FPS, resume=True)
    fewer = SPEC.select([k for k in SPEC if k != "next.success"])
    with pytest.raises(FeatureMismatchError, match="next.success"):
        LeRobotDatasetWriter.create(root, fewer, fps=FPS, resume=True)
    with pytest.raises(DatasetError, match="fps"):
        LeRobotDatasetWriter.create(root, SPEC, fps=FPS + 1, resume=True)
    with pytest.raises(DatasetError, match="resume=True"):
        LeRobotDatasetWriter.create(root, SPEC, fps=FPS)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        LeRobotDatasetWriter.create(tmp_path / "junk", SPEC, fps=FPS)
    assert validate_dataset(root) == []


def test_add_frame_rejects_bad_frames_naming_the_key(tmp_path):
    with LeRobotDatasetWriter.create(tmp_path / "ds", SPEC, fps=FPS) as w:
        good = make_frame(SPEC, 0, 0, 3)
        with pytest.raises(FeatureMismatchError, match="'action'.*shape"):
            w.add_frame({**good, "action": np.zeros(4, np.float32)}, task="t")
        with pytest.raises(FeatureMismatchError, match=r"missing \['next.done'\]"):
            w.add_frame({k: v for k, v in good.items() if k != "next.done"}, task="t")
        with pytest.raises(FeatureMismatchError, match="unexpected.*'extra'"):
            w.add_frame({**good, "extra": np.zeros(1)}, task="t")
        with pytest.raises(FeatureMismatchError, match="observation.images.front.*uint8"):
            w.add_frame(
                {**good, "observation.images.front": np.zeros((48, 64, 3), np.float32)}, task="t"
            )
        with pytest.raises(FeatureMismatchError, match="observation.images.wrist"):
            w.add_frame(
                {**good, "observation.images.wrist": np.zeros((3, 32, 32), np.uint8)}, task="t"
            )
        with pytest.raises(FeatureMismatchError, match="next.done"):
            w.add_frame({**good, "next.done": np.array([0.5])}, task="t")
        with pytest.raises(ValueError, match="task"):
            w.add_frame(good, task="")
        assert w.buffered_frames == 0  # rejected frames leave no trace
        w.add_frame(
            {**good, "next.reward": 0.5, "action": good["action"].astype(np.float64)}, task="t"
        )
        w.add_frame(good, task="t")
        assert w.save_episode() == 0 and w.num_frames == 2
        with pytest.raises(DatasetError, match="no frames"):
            w.save_episode()
    ep = LeRobotDataset(tmp_path / "ds").episode(0)
    assert ep["next.reward"][0].tolist() == [0.5] and ep["action"].dtype == np.float32


def test_discard_context_exit_and_single_writer(tmp_path):
    root = tmp_path / "ds"
    w = LeRobotDatasetWriter.create(root, STATE_SPEC, fps=FPS)
    with pytest.raises(DatasetError, match="another writer"):
        LeRobotDatasetWriter.create(root, STATE_SPEC, fps=FPS, resume=True)
    with w:
        for t in range(5):
            w.add_frame(make_frame(STATE_SPEC, 0, t, 5), task="t")
        w.discard_episode()
        for t in range(3):
            w.add_frame(make_frame(STATE_SPEC, 1, t, 3), task="t")
        w.save_episode()
        w.add_frame(make_frame(STATE_SPEC, 2, 0, 3), task="t")  # unsaved: dropped on exit
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 1 and ds.num_frames == 3
    np.testing.assert_array_equal(
        ds.episode(0)["action"],
        stack([make_frame(STATE_SPEC, 1, t, 3) for t in range(3)], "action"),
    )
    assert not (root / ".staging").exists()
    assert validate_dataset(root) == [] and check_dataset(root).notes == []
    empty = tmp_path / "empty"
    (empty / ".staging" / "123-456").mkdir(parents=True)  # what a writer killed early leaves
    (empty / ".lock").touch()
    LeRobotDatasetWriter.create(empty, STATE_SPEC, fps=FPS).close()
    assert validate_dataset(empty) == [] and LeRobotDataset(empty).num_episodes == 0
    assert sorted(p.name for p in empty.iterdir()) == ["meta"]


# ---------------------------------------------------------------- crash safety

KILL_SCRIPT = textwrap.dedent(
    """
    import logging, os, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_datasets import SPEC, make_frame
    from robot_learning.datasets import LeRobotDatasetWriter
    from robot_learning.datasets.commit import PAUSE_ENV
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(message)s")
    logging.getLogger("robot_learning.datasets.commit").setLevel(logging.DEBUG)
    w = LeRobotDatasetWriter.create(sys.argv[1], SPEC, fps=10, resume=True)
    pause_from = int(sys.argv[2])
    for ep in range(w.num_episodes, 1000):
        if ep == pause_from and sys.argv[3] != "add_frame":
            os.environ[PAUSE_ENV] = sys.argv[3] + ":30"
        for t in range(6):
            w.add_frame(make_frame(SPEC, ep, t, 6), task=f"task {{ep}}")
            if ep == pause_from and t == 3:
                print("frame 3 of episode", ep, flush=True)
                if sys.argv[3] == "add_frame":
                    import time; time.sleep(30)
        w.save_episode()
        print("saved", ep, flush=True)
    """
)


def run_writer_until(root: Path, script: Path, pause_from: int, marker: str, mode: str) -> None:
    """Start a writer subprocess and SIGKILL it right after it prints ``marker``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), str(pause_from), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    seen = []
    try:
        deadline = time.time() + 60
        for line in proc.stdout:
            seen.append(line.rstrip())
            if marker in line or time.time() > deadline:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert any(marker in line for line in seen), "\n".join(seen[-20:])


@pytest.fixture(scope="module")
def kill_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kill") / "writer.py"
    path.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    return path


@pytest.mark.parametrize(
    "marker, committed",
    [
        ("frame 3 of episode 2", 2),
        ("commit episode 2: staged", 2),
        ("commit episode 2: videos moved", 2),
        ("commit episode 2: data moved", 2),
        ("commit episode 2: episode metadata moved", 2),
        ("commit episode 2: tasks written", 2),
        ("commit episode 2: stats written", 2),
        ("commit episode 2: committed", 3),
    ],
)
def test_sigkill_at_any_stage_keeps_committed_episodes(tmp_path, kill_script, marker, committed):
    root = tmp_path / "ds"
    mode = "add_frame" if marker.startswith("frame") else marker.split(": ")[1]
    run_writer_until(root, kill_script, pause_from=2, marker=marker, mode=mode)
    report = check_dataset(root)
    assert report.problems == [] and report.notes  # leftovers are notes, not problems
    ds = LeRobotDataset(root)
    assert ds.num_episodes == committed and ds.num_frames == 6 * committed
    assert ds.tasks == [f"task {i}" for i in range(committed)]
    assert ds.stats["action"]["count"].tolist() == [
        6 * committed
    ]  # re-aggregated if stats ran ahead
    last = ds.episode(committed - 1)
    np.testing.assert_array_equal(
        last["action"], stack([make_frame(SPEC, committed - 1, t, 6) for t in range(6)], "action")
    )
    # resuming cleans the leftovers and appends after the committed episodes
    with LeRobotDatasetWriter.create(root, SPEC, fps=10, resume=True) as w:
        for t in range(4):
            w.add_frame(make_frame(SPEC, 9, t, 4), task="task 9")
        assert w.save_episode() == committed
    report = check_dataset(root)
    assert report.problems == [] and report.notes == []
    ds = LeRobotDataset(root)
    assert ds.episode_lengths == [6] * committed + [4]
    assert ds.tasks == [f"task {i}" for i in range(committed)] + ["task 9"]
    assert ds.stats["index"]["count"].tolist() == [ds.num_frames]


def test_sigkill_at_random_moments(tmp_path, kill_script):
    """Unpaused writer killed after a few arbitrary delays: always a valid prefix of episodes."""
    root = tmp_path / "ds"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    for delay in (0.25, 0.6):
        log = tmp_path / f"log{delay}.txt"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, str(kill_script), str(root), "-1", "none"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
            deadline = time.time() + 60
            while "saved" not in log.read_text() and time.time() < deadline and proc.poll() is None:
                time.sleep(0.01)  # let it get going, then kill after an arbitrary delay
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert "saved" in log.read_text(), log.read_text()[-2000:]
        assert validate_dataset(root) == []
        ds = LeRobotDataset(root)
        assert ds.num_episodes >= 1 and ds.num_frames == 6 * ds.num_episodes


# ---------------------------------------------------------------- validation


def _rewrite_parquet(path: Path, fn) -> None:
    table = pq.read_table(path)
    pq.write_table(fn(table), path)


def _reencode(path: Path, frames: int) -> None:
    enc = VideoEncoder(path.with_suffix(".new.mp4"), FPS, (32, 32, 3))
    for t in range(frames):
        enc.add(smooth_image((32, 32, 3), 0, t))
    enc.close()
    os.replace(path.with_suffix(".new.mp4"), path)


DATA1 = "data/chunk-000/file-001.parquet"
WRIST1 = "videos/observation.images.wrist/chunk-000/file-001.mp4"
CORRUPTIONS = {
    "missing info.json": (lambda r: (r / "meta/info.json").unlink(), ["meta/info.json", "missing"]),
    "bad info.json": (
        lambda r: (r / "meta/info.json").write_text("{not json"),
        ["meta/info.json", "invalid JSON"],
    ),
    "info.json lacks keys": (
        lambda r: (r / "meta/info.json").write_text(json.dumps({"codebase_version": "v3.0"})),
        ["meta/info.json", "missing keys"],
    ),
    "missing stats.json": (
        lambda r: (r / "meta/stats.json").unlink(),
        ["meta/stats.json", "missing"],
    ),
    "bad stats.json": (
        lambda r: (r / "meta/stats.json").write_text("[1, 2"),
        ["meta/stats.json", "invalid"],
    ),
    "stats missing a feature": (
        lambda r: (r / "meta/stats.json").write_text(
            json.dumps(
                {
                    k: v
                    for k, v in json.loads((r / "meta/stats.json").read_text()).items()
                    if k != "action"
                }
            )
        ),
        ["meta/stats.json", "'action'"],
    ),
    "missing tasks": (
        lambda r: (r / "meta/tasks.parquet").unlink(),
        ["meta/tasks.parquet", "missing"],
    ),
    "missing episodes meta": (
        lambda r: (r / "meta/episodes/chunk-000/file-001.parquet").unlink(),
        ["meta/episodes", "committed episodes [1]"],
    ),
    "missing data file": (lambda r: (r / DATA1).unlink(), [DATA1, "missing"]),
    "missing video file": (lambda r: (r / WRIST1).unlink(), [WRIST1, "missing"]),
    "truncated parquet": (
        lambda r: (r / DATA1).write_bytes((r / DATA1).read_bytes()[:200]),
        [DATA1, "unreadable parquet"],
    ),
    "truncated episodes parquet": (
        lambda r: (r / "meta/episodes/chunk-000/file-000.parquet").write_bytes(b"PAR1garbage"),
        ["meta/episodes/chunk-000/file-000.parquet", "unreadable parquet"],
    ),
    "column type changed": (
        lambda r: _rewrite_parquet(
            r / DATA1,
            lambda t: t.set_column(
                t.schema.get_field_index("next.reward"),
                "next.reward",
                t["next.reward"].cast(pa.float64()),
            ),
        ),
        [DATA1, "'next.reward'", "double"],
    ),
    "column missing": (
        lambda r: _rewrite_parquet(r / DATA1, lambda t: t.drop_columns(["action"])),
        [DATA1, "missing columns ['action']"],
    ),
    "dropped data frame": (
        lambda r: _rewrite_parquet(r / DATA1, lambda t: t.slice(0, t.num_rows - 1)),
        [DATA1, "frame count mismatch"],
    ),
    "dropped video frame": (
        lambda r: _reencode(r / WRIST1, LENGTHS[1] - 1),
        [WRIST1, "frame count mismatch"],
    ),
    "index discontinuity": (
        lambda r: _rewrite_parquet(
            r / DATA1,
            lambda t: t.set_column(
                t.schema.get_field_index("frame_index"),
                "frame_index",
                pa.array(np.arange(t.num_rows) * 2, pa.int64()),
            ),
        ),
        [DATA1, "frame_index discontinuity"],
    ),
    "garbage video": (
        lambda r: (r / WRIST1).write_bytes(b"\x00" * 100),
        [WRIST1, "unreadable video"],
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_validate_names_each_corruption(copy, name):
    mutate, expected = CORRUPTIONS[name]
    mutate(copy)
    problems = validate_dataset(copy)
    assert problems, f"{name}: not detected"
    assert any(all(s in p for s in expected) for p in problems), (name, problems)


@pytest.mark.parametrize(
    "name", ["missing info.json", "bad info.json", "missing data file", "missing tasks"]
)
def test_reader_refuses_broken_datasets(copy, name):
    CORRUPTIONS[name][0](copy)
    with pytest.raises(DatasetError, match=CORRUPTIONS[name][1][0].replace(".", r"\.")):
        LeRobotDataset(copy)


def test_validate_never_raises_on_garbage(tmp_path):
    assert validate_dataset(tmp_path / "nope") == [f"{tmp_path / 'nope'}: not a directory"]
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text("[]")
    assert any("JSON object" in p for p in validate_dataset(tmp_path))


# ---------------------------------------------------------------- info & visualisation


def test_dataset_info_summary(base):
    root, _ = base
    info = dataset_info(root)
    assert (info["episodes"], info["frames"], info["fps"]) == (3, 47, FPS)
    assert info["codebase_version"] == "v3.0" and info["tasks"] == [
        "pick the cube",
        "place the cube",
    ]
    assert info["features"]["action"] == "float32 (3,)"
    assert info["features"]["observation.images.front"] == "video (48, 64, 3)"
    assert info["size_bytes"] > 0 and info["episode_length"] == {
        "min": 12,
        "mean": 15.67,
        "max": 20,
    }
    json.dumps(info)


def test_visualize_png_and_mp4(base, tmp_path):
    root, _ = base
    png = visualize_dataset(root, tmp_path / "sheet.png", episode=1)
    with Image.open(png) as img:
        assert img.width >= 640 and img.height > 2 * 128
    mp4 = visualize_dataset(root, tmp_path / "ep.mp4", episode=2)
    probe = probe_video(mp4)
    assert probe.num_frames == LENGTHS[2] and probe.pix_fmt == "yuv420p"
    state_only = tmp_path / "state"
    write(state_only, STATE_SPEC, lengths=(9,), tasks=("t",))
    assert visualize_dataset(state_only, tmp_path / "s.png").stat().st_size > 0
    assert probe_video(visualize_dataset(state_only, tmp_path / "s.mp4")).num_frames == 9
    with pytest.raises(ValueError, match=".png"):
        visualize_dataset(root, tmp_path / "x.gif")
