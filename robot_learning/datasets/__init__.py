"""LeRobotDataset v3.0: write (one atomic commit per episode), read, validate, visualise.

Format decisions (all within what LeRobot v3.0 reads):

* **One episode per file.** v3.0 allows several episodes per ``data/``, ``videos/`` and
  ``meta/episodes/`` file; this writer gives each saved episode its own data parquet, its own
  mp4 per camera and its own episodes-metadata parquet, at the next ``(chunk, file)`` position.
  No committed file is ever rewritten, so a commit is a few renames plus ``meta/info.json``
  replaced last (the commit point); see :mod:`.commit`. The reader also handles LeRobot's own
  multi-episode files, and a resumed writer appends after them.
* **Columns as LeRobot/``datasets`` write them**: scalar ``(1,)`` features as plain columns,
  vectors as ``fixed_size_list``, ``image`` features as PNG structs, bookkeeping columns
  ``timestamp`` (float32), ``frame_index``/``episode_index``/``index``/``task_index`` (int64).
* **Video**: H.264 (libx264), yuv420p, crf 18, keyframe every 2 frames, no B-frames, frame ``i``
  at ``i / fps``; codec/pix_fmt/fps recorded in the feature's ``info`` as LeRobot does.
* **Stats**: LeRobot's per-feature ``min/max/mean/std/count`` (images per channel in [0, 1],
  shape ``(C, 1, 1)``, from sampled frames), per episode in ``meta/episodes`` and aggregated
  incrementally into ``meta/stats.json``.

Modules: :mod:`.layout` (paths, info.json), :mod:`.atomic` (durable writes), :mod:`.columns`
(arrow types), :mod:`.video` (PyAV), :mod:`.stats`, :mod:`.metadata` (meta/ loaders),
:mod:`.commit`, :mod:`.writer`, :mod:`.resume`, :mod:`.reader`, :mod:`.validate`,
:mod:`.visualize`.
"""

from robot_learning.datasets.layout import CODEBASE_VERSION, DatasetError
from robot_learning.datasets.reader import LeRobotDataset
from robot_learning.datasets.validate import (
    ValidationReport,
    check_dataset,
    dataset_info,
    validate_dataset,
)
from robot_learning.datasets.video import VideoSettings
from robot_learning.datasets.visualize import visualize_dataset
from robot_learning.datasets.writer import LeRobotDatasetWriter

__all__ = [
    "CODEBASE_VERSION",
    "DatasetError",
    "LeRobotDataset",
    "LeRobotDatasetWriter",
    "ValidationReport",
    "VideoSettings",
    "check_dataset",
    "dataset_info",
    "validate_dataset",
    "visualize_dataset",
]
