"""Record episodes into a LeRobotDataset v3.0 folder, one atomic commit per episode.

Frames are checked against the feature spec as they arrive; camera frames are encoded to mp4
on the fly (nothing but small thumbnails for image statistics is kept in memory), the other
features are buffered. :meth:`LeRobotDatasetWriter.save_episode` commits with the protocol in
:mod:`robot_learning.datasets.commit`; an exclusive ``flock`` on ``<root>/.lock`` keeps two
writers off one dataset.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import shutil
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa

from robot_learning.datasets import stats as stats_mod
from robot_learning.datasets.atomic import move_durable, write_json_atomic
from robot_learning.datasets.columns import build_table, encode_png
from robot_learning.datasets.commit import (
    StagedEpisode,
    commit,
    episode_row,
    new_staging_dir,
    write_parquet_durable,
)
from robot_learning.datasets.layout import (
    BOOKKEEPING_FEATURES,
    INFO_PATH,
    LOCK_FILE,
    STAGING_DIR,
    STATS_PATH,
    DatasetError,
    new_info,
    next_position,
)
from robot_learning.datasets.metadata import write_tasks
from robot_learning.datasets.resume import ResumeState, load_for_resume
from robot_learning.datasets.video import VideoEncoder, VideoSettings, video_info
from robot_learning.features import Feature, FeatureMismatchError, FeatureSpec

log = logging.getLogger(__name__)


def _acquire_lock(root: Path) -> IO[str]:
    handle = open(root / LOCK_FILE, "w")  # noqa: SIM115 - held open for the writer's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DatasetError(
            f"{root}: another writer holds {LOCK_FILE}; one writer per dataset"
        ) from None
    return handle


def _on_disk_episodes(root: Path) -> int | None:
    try:
        return int(json.loads((root / INFO_PATH).read_text())["total_episodes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _coerce(key: str, feature: Feature, value: Any) -> Any:
    """``value`` as one frame of ``feature`` (dtype cast only where lossless); errors name ``key``."""
    if feature.dtype == "string":
        if not isinstance(value, str):
            raise FeatureMismatchError(f"{key!r}: expected a str, got {type(value).__name__}")
        return value
    arr = np.asarray(value)
    if feature.shape == (1,) and arr.shape == ():
        arr = arr.reshape(1)
    feature.check_sample(key, arr)
    if feature.is_image:
        return arr
    kind = arr.dtype.kind
    allowed = {"f": "fiub", "i": "iub", "u": "iub", "b": "b"}[np.dtype(feature.numpy_dtype).kind]
    if kind not in allowed and not (
        feature.dtype == "bool" and kind in "iu" and np.isin(arr, (0, 1)).all()
    ):
        raise FeatureMismatchError(f"{key!r}: cannot store {arr.dtype} values as {feature.dtype}")
    return arr.astype(feature.numpy_dtype)


class LeRobotDatasetWriter:
    """Append episodes to a LeRobotDataset v3.0 folder. Build with :meth:`create`.

    Use as a context manager; leaving it discards an unsaved episode and never leaves the
    dataset in a state that is not readable.
    """

    def __init__(
        self, root: Path, state: ResumeState, lock: IO[str], video_settings: VideoSettings
    ):
        self.root = root
        self._state = state
        self._lock: IO[str] | None = lock
        self._video = video_settings
        self.features: FeatureSpec = state.spec
        """The user features (without bookkeeping columns)."""
        self._all = FeatureSpec({**state.spec.features, **BOOKKEEPING_FEATURES.features})
        self._reset_buffer()

    # construction
    @classmethod
    def create(
        cls,
        root: str | Path,
        features: FeatureSpec,
        fps: int,
        robot_type: str | None = None,
        resume: bool = False,
        video_settings: VideoSettings | None = None,
    ) -> LeRobotDatasetWriter:
        """Start a new dataset at ``root``, or append to the one there when ``resume``.

        Args:
            root: dataset folder; must not exist or be empty unless ``resume``.
            features: user features (``observation.*``, ``action``, optional ``next.*``); the
                bookkeeping columns (timestamp, frame/episode/global index, task index) are added.
            fps: control rate; frame ``i`` of an episode has timestamp ``i / fps``.
            robot_type: recorded in info.json.
            resume: append to an existing dataset (its fps/features must match; leftovers of an
                interrupted commit are removed). A missing or empty ``root`` starts a new dataset.
            video_settings: camera encoding options.

        Raises:
            DatasetError: ``root`` is not empty (without ``resume``), is locked, or is broken.
            FeatureMismatchError: ``resume`` with different features (the message names them).
        """
        root = Path(root)
        if not isinstance(features, FeatureSpec) or not len(features):
            raise DatasetError("features must be a non-empty FeatureSpec")
        if root.exists() and not root.is_dir():
            raise DatasetError(f"{root} exists and is not a directory")
        has_info = (root / INFO_PATH).is_file()
        # our lock file and staging area may survive a killed writer; they do not count
        occupied = root.is_dir() and any(
            p.name not in (LOCK_FILE, STAGING_DIR) for p in root.iterdir()
        )
        if occupied and not resume:
            what = "holds a dataset" if has_info else "is not empty"
            raise DatasetError(f"{root} {what}; pass resume=True to append to it")
        if not has_info:
            new_info(
                features, fps, robot_type
            )  # validate fps and feature names before touching disk
        root.mkdir(parents=True, exist_ok=True)
        lock = _acquire_lock(root)
        try:
            if has_info:
                state = load_for_resume(root, features, fps, robot_type)
            else:
                state = cls._initialise(root, features, fps, robot_type)
        except BaseException:
            lock.close()
            raise
        log.info(
            "dataset writer on %s: %d episodes, %d frames",
            root,
            state.num_episodes,
            state.num_frames,
        )
        return cls(root, state, lock, video_settings or VideoSettings())

    @staticmethod
    def _initialise(
        root: Path, features: FeatureSpec, fps: int, robot_type: str | None
    ) -> ResumeState:
        for sub in ("data", "videos", "meta/episodes"):
            if any((root / sub).rglob("*.parquet")) or any((root / sub).rglob("*.mp4")):
                raise DatasetError(
                    f"{root}/{sub} has files but meta/info.json is missing; refusing to overwrite"
                )
        info = new_info(features, fps, robot_type)
        shutil.rmtree(root / STAGING_DIR, ignore_errors=True)
        shutil.rmtree(
            root / "meta", ignore_errors=True
        )  # only leftovers of an interrupted creation
        # build meta/ aside and rename it into place: the dataset appears complete or not at all
        staging = new_staging_dir(root)
        write_tasks(staging, [])
        write_json_atomic(staging / STATS_PATH, {})
        write_json_atomic(staging / INFO_PATH, info)
        move_durable(staging / "meta", root / "meta")
        shutil.rmtree(staging, ignore_errors=True)
        return ResumeState.empty(info, features)

    # recording
    @property
    def num_episodes(self) -> int:
        """Committed episodes."""
        return self._state.num_episodes

    @property
    def num_frames(self) -> int:
        """Committed frames."""
        return self._state.num_frames

    @property
    def fps(self) -> int:
        """Frames per second."""
        return int(self._state.info["fps"])

    @property
    def buffered_frames(self) -> int:
        """Frames of the episode being recorded (not yet saved)."""
        return len(self._task_list)

    def _reset_buffer(self) -> None:
        self._columns: dict[str, list[Any]] = {
            k: [] for k, f in self.features.items() if f.dtype != "video"
        }
        self._thumbs: dict[str, list[np.ndarray]] = {k: [] for k in self.features.image_keys}
        self._task_list: list[str] = []
        self._encoders: dict[str, VideoEncoder] = {}
        self._staging: Path | None = None

    def add_frame(self, frame: dict[str, Any], task: str) -> None:
        """Buffer one frame of the current episode.

        Args:
            frame: one value per user feature (images uint8 ``(H, W, C)``); numeric values are
                cast to the feature dtype when lossless, scalars fill shape ``(1,)`` features.
            task: natural-language task of this frame.

        Raises:
            FeatureMismatchError: missing/unexpected keys or a bad shape/dtype (names the key).
        """
        if self._lock is None:
            raise DatasetError("writer is closed")
        if not isinstance(task, str) or not task:
            raise ValueError(f"task must be a non-empty string, got {task!r}")
        missing = [k for k in self.features if k not in frame]
        extra = [k for k in frame if k not in self.features]
        if missing or extra:
            raise FeatureMismatchError(
                f"frame does not match the dataset features: missing {missing}, unexpected {extra}"
            )
        values = {k: _coerce(k, f, frame[k]) for k, f in self.features.items()}
        try:
            self._append(values)
        except BaseException:
            # a half-appended frame (e.g. Ctrl-C inside the encoder) would misalign the columns
            log.warning("add_frame interrupted; discarding the current episode")
            self.discard_episode()
            raise
        self._task_list.append(task)

    def _append(self, values: dict[str, Any]) -> None:
        if self._staging is None:
            self._staging = new_staging_dir(self.root)
        for key, feat in self.features.items():
            value = values[key]
            if feat.is_image:
                self._thumbs[key].append(stats_mod.downsample(value).copy())
            if feat.dtype == "video":
                if key not in self._encoders:
                    path = self._staging / f"{key}.mp4"
                    self._encoders[key] = VideoEncoder(path, self.fps, feat.shape, self._video)
                self._encoders[key].add(value)
            elif feat.dtype == "image":
                self._columns[key].append(encode_png(value))
            else:
                self._columns[key].append(value)

    def discard_episode(self) -> None:
        """Drop the buffered frames of the current episode."""
        for encoder in self._encoders.values():
            encoder.abort()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        self._reset_buffer()

    def save_episode(self) -> int:
        """Commit the buffered episode atomically; returns its ``episode_index``.

        On an exception the episode is dropped and the dataset is left as it was.
        """
        if self._lock is None:
            raise DatasetError("writer is closed")
        length = len(self._task_list)
        if length == 0:
            raise DatasetError("save_episode() with no frames; call add_frame() first")
        try:
            return self._save(length)
        finally:
            self.discard_episode()

    def _save(self, length: int) -> int:
        state = self._state
        ep, start, fps = state.num_episodes, state.num_frames, self.fps
        tasks = list(state.tasks)
        task_ids = {t: i for i, t in enumerate(tasks)}
        for task in dict.fromkeys(self._task_list):
            if task not in task_ids:
                task_ids[task] = len(tasks)
                tasks.append(task)
        columns: dict[str, Any] = {
            k: np.stack(v) if v and isinstance(v[0], np.ndarray) else v
            for k, v in self._columns.items()
        }
        frame_index = np.arange(length, dtype=np.int64)
        columns.update(
            timestamp=(frame_index / fps).astype(np.float32),
            frame_index=frame_index,
            episode_index=np.full(length, ep, dtype=np.int64),
            index=start + frame_index,
            task_index=np.array([task_ids[t] for t in self._task_list], dtype=np.int64),
        )
        picks = stats_mod.sample_indices(length)
        samples = {k: np.stack([thumbs[i] for i in picks]) for k, thumbs in self._thumbs.items()}
        ep_stats = stats_mod.episode_stats(columns, samples, self._all)

        assert self._staging is not None
        staged = StagedEpisode(
            index=ep,
            directory=self._staging,
            data_pos=next_position(state.positions["data"], state.chunks_size),
            meta_pos=next_position(state.positions["meta"], state.chunks_size),
        )
        info = copy.deepcopy(state.info)
        for key, encoder in self._encoders.items():
            frames = encoder.close()
            if frames != length:
                raise DatasetError(f"{key}: encoded {frames} video frames for {length} frames")
            pos = next_position(state.positions[f"videos/{key}"], state.chunks_size)
            staged.videos[key] = (encoder.path, pos)
            if not info["features"][key].get("info"):
                info["features"][key]["info"] = video_info(encoder.path)
        self._encoders = {}
        write_parquet_durable(build_table(columns, self._all), staged.data_file)
        row = episode_row(
            staged, length, list(dict.fromkeys(self._task_list)), start, fps, ep_stats
        )
        write_parquet_durable(pa.Table.from_pylist([row]), staged.meta_file)

        new_stats = stats_mod.aggregate([state.stats, ep_stats])
        info.update(
            total_episodes=ep + 1,
            total_frames=start + length,
            total_tasks=len(tasks),
            splits={"train": f"0:{ep + 1}"},
        )
        tasks_changed = len(tasks) != len(state.tasks) or state.tasks_dirty
        try:
            commit(self.root, staged, info, tasks if tasks_changed else None, new_stats)
        except BaseException:
            if _on_disk_episodes(self.root) == ep + 1:  # interrupted after the commit point
                state.advance(info, tasks, new_stats, staged)
            raise
        state.advance(info, tasks, new_stats, staged)
        log.debug("saved episode %d (%d frames) to %s", ep, length, self.root)
        return ep

    def close(self) -> None:
        """Discard any unsaved episode and release the dataset lock (idempotent)."""
        if self._lock is None:
            return
        if self.buffered_frames:
            log.warning(
                "discarding %d unsaved frames on close of %s", self.buffered_frames, self.root
            )
        self.discard_episode()
        with contextlib.suppress(OSError):
            (self.root / STAGING_DIR).rmdir()  # only when empty
        with contextlib.suppress(OSError):
            (self.root / LOCK_FILE).unlink()
        self._lock.close()
        self._lock = None

    def __enter__(self) -> LeRobotDatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LeRobotDatasetWriter({str(self.root)!r}, episodes={self.num_episodes}, frames={self.num_frames})"
