"""Read a LeRobotDataset v3.0 folder: whole episodes or single frames as numpy arrays.

Only committed episodes (``episode_index < total_episodes`` in ``meta/info.json``) are visible,
so a folder whose writer was killed mid-commit reads exactly like the last successful commit.
Files written by LeRobot itself (several episodes per file) are read through the episodes table
(``dataset_from_index``/``dataset_to_index`` and the video ``from_timestamp``/``to_timestamp``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from robot_learning.datasets import stats as stats_mod
from robot_learning.datasets.columns import has_column, to_numpy
from robot_learning.datasets.layout import (
    BOOKKEEPING_FEATURES,
    DatasetError,
    data_relpath,
    read_info,
    spec_from_info,
    video_relpath,
)
from robot_learning.datasets.metadata import (
    EpisodeRecord,
    read_episodes,
    read_stats_json,
    read_tasks,
)
from robot_learning.datasets.video import decode_video
from robot_learning.features import FeatureSpec

log = logging.getLogger(__name__)


def _raise(root: Path, problems: list[str]) -> None:
    if problems:
        listed = "\n  - ".join(problems)
        raise DatasetError(f"{root} is not a readable LeRobot v3.0 dataset:\n  - {listed}")


class LeRobotDataset:
    """A LeRobotDataset v3.0 folder on disk.

    Args:
        root: dataset folder.
        cache_episodes: decoded episodes kept for frame access (``ds[i]``).

    Raises:
        DatasetError: missing/invalid metadata or files that committed episodes point to.
    """

    def __init__(self, root: str | Path, cache_episodes: int = 4):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset folder")
        self.info: dict[str, Any] = read_info(self.root)
        """The parsed ``meta/info.json``."""
        episodes = read_episodes(self.root, self.info)
        tasks, task_problems = read_tasks(self.root)
        _raise(self.root, episodes.problems + task_problems)
        for note in episodes.notes:
            log.info("%s: %s", self.root, note)
        if len(tasks) < self.info["total_tasks"]:
            _raise(
                self.root,
                [
                    f"meta/tasks.parquet has {len(tasks)} tasks, info.json says {self.info['total_tasks']}"
                ],
            )
        self.tasks: list[str] = tasks[: self.info["total_tasks"]]
        """Task strings indexed by ``task_index``."""
        self.features: FeatureSpec = spec_from_info(self.info["features"])
        """The user features (without LeRobot's bookkeeping columns)."""
        self._all = FeatureSpec({**self.features.features, **BOOKKEEPING_FEATURES.features})
        self._records: list[EpisodeRecord] = episodes.records
        self._ends = np.array([r.to_index for r in self._records], dtype=np.int64)
        missing = [str(p.relative_to(self.root)) for p in self._files() if not p.is_file()]
        _raise(self.root, [f"{m}: missing" for m in missing])
        self.stats: dict[str, dict[str, np.ndarray]] = self._load_stats(episodes)
        """Per-feature ``min/max/mean/std/count`` arrays (``meta/stats.json``)."""
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cache_size = max(1, cache_episodes)
        self._table_cache: tuple[Path, pa.Table] | None = None

    def _files(self) -> list[Path]:
        files = set()
        for rec in self._records:
            files.add(self.root / data_relpath(self.info, *rec.data_pos))
            for key, (chunk, file, _, _) in rec.videos.items():
                files.add(self.root / video_relpath(self.info, key, chunk, file))
        return sorted(files)

    def _load_stats(self, episodes: Any) -> dict[str, dict[str, np.ndarray]]:
        stats, problems = read_stats_json(self.root)
        _raise(self.root, problems)
        assert stats is not None
        count = stats_mod.count_of(stats)
        if self.num_frames and count is not None and count != self.num_frames:
            log.warning(
                "%s: meta/stats.json covers %d frames, the dataset has %d (interrupted commit); "
                "re-aggregating from meta/episodes",
                self.root,
                count,
                self.num_frames,
            )
            stats = stats_mod.aggregate(episodes.stats())
        problems = stats_mod.check_stats(stats, self._all) if self.num_frames else []
        if problems:
            log.warning("%s: meta/stats.json is incomplete: %s", self.root, "; ".join(problems))
        return stats

    # summary
    @property
    def fps(self) -> int:
        """Frames per second."""
        return int(self.info["fps"])

    @property
    def robot_type(self) -> str | None:
        """Robot recorded in info.json."""
        return self.info.get("robot_type")

    @property
    def num_episodes(self) -> int:
        """Committed episodes."""
        return len(self._records)

    @property
    def num_frames(self) -> int:
        """Committed frames."""
        return int(self.info["total_frames"])

    @property
    def episode_lengths(self) -> list[int]:
        """Frames per episode, by episode index."""
        return [r.length for r in self._records]

    @property
    def camera_keys(self) -> list[str]:
        """Image/video feature keys."""
        return self.features.image_keys

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return f"LeRobotDataset({str(self.root)!r}, episodes={self.num_episodes}, frames={self.num_frames}, fps={self.fps})"

    # access
    def _data_table(self, rec: EpisodeRecord) -> pa.Table:
        path = self.root / data_relpath(self.info, *rec.data_pos)
        if self._table_cache is None or self._table_cache[0] != path:
            try:
                self._table_cache = (path, pq.read_table(path))
            except (OSError, pa.ArrowException) as exc:
                raise DatasetError(f"{path}: unreadable parquet ({exc})") from None
        table = self._table_cache[1]
        if table.num_rows != rec.length or table["index"][0].as_py() != rec.from_index:
            idx = table["index"]
            mask = pc.and_(pc.greater_equal(idx, rec.from_index), pc.less(idx, rec.to_index))
            table = table.filter(mask)
        if table.num_rows != rec.length:
            raise DatasetError(
                f"{path}: {table.num_rows} rows for episode {rec.index}, expected {rec.length}"
            )
        return table

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """All columns of one episode: user features ``[T, *shape]`` (images decoded to uint8
        ``[T, H, W, C]``), bookkeeping columns ``[T]`` and ``task`` (the task strings)."""
        if not -self.num_episodes <= index < self.num_episodes:
            raise IndexError(f"episode {index} out of range (dataset has {self.num_episodes})")
        rec = self._records[index % self.num_episodes]
        table = self._data_table(rec)
        out: dict[str, np.ndarray] = {}
        for key, feat in self._all.items():
            if has_column(feat):
                if key not in table.column_names:
                    raise DatasetError(
                        f"{data_relpath(self.info, *rec.data_pos)}: no column {key!r}"
                    )
                out[key] = to_numpy(table[key], feat, squeeze=key in BOOKKEEPING_FEATURES)
        for key, (chunk, file, start, end) in rec.videos.items():
            path = self.root / video_relpath(self.info, key, chunk, file)
            try:
                frames = decode_video(path, self.fps, start, end, self.features[key].shape[2])
            except (OSError, ValueError) as exc:
                raise DatasetError(f"{path}: cannot decode ({exc})") from None
            if frames.shape != (rec.length, *self.features[key].shape):
                raise DatasetError(
                    f"{path}: decoded {frames.shape} for episode {rec.index}, expected {(rec.length, *self.features[key].shape)}"
                )
            out[key] = frames
        out["task"] = np.array([self.tasks[i] for i in out["task_index"]], dtype=str)
        return out

    def columns(self, names: list[str]) -> dict[str, np.ndarray]:
        """Non-video columns over every committed frame in global-index order, without decoding video.

        Bookkeeping columns (``timestamp``, ``frame_index``, ``episode_index``, ...) are 1-D.
        """
        unknown = [n for n in names if n not in self._all or not has_column(self._all[n])]
        if unknown:
            raise DatasetError(f"{self.root}: no data columns {unknown}")
        parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for rec in self._records:
            table = self._data_table(rec)
            for n in names:
                feat = self._all[n]
                parts[n].append(to_numpy(table[n], feat, squeeze=n in BOOKKEEPING_FEATURES))
        return {n: np.concatenate(v) if v else np.zeros((0,), np.float64) for n, v in parts.items()}

    def _cached_episode(self, index: int) -> dict[str, np.ndarray]:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        data = self.episode(index)
        self._cache[index] = data
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data

    def __getitem__(self, idx: int) -> dict[str, Any]:
        """One frame by global index: arrays of each feature's shape, scalar bookkeeping, ``task`` str."""
        idx = int(idx)
        if idx < 0:
            idx += self.num_frames
        if not 0 <= idx < self.num_frames:
            raise IndexError(f"frame {idx} out of range (dataset has {self.num_frames})")
        ep = int(np.searchsorted(self._ends, idx, side="right"))
        data = self._cached_episode(ep)
        offset = idx - self._records[ep].from_index
        item: dict[str, Any] = {k: v[offset] for k, v in data.items()}
        item["task"] = str(item["task"])
        return item
