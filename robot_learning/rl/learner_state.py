"""Save and resume the whole off-policy learner, without pickle.

A learner checkpoint is a folder ``out/checkpoints/step_XXXXXX/`` (step = environment steps):

* ``learner.safetensors``: the algorithm (networks, targets, optimisers, counters), the
  collector (running episodes), the curve history, the loop counters and every RNG (torch,
  numpy, Python globals and the loop's own ``numpy.random.Generator``), stored with
  :func:`robot_learning.training.checkpoint.save_state` (tensors + a JSON skeleton);
* ``replay.safetensors``: the online replay buffer's arrays (``safetensors.numpy``, images stay
  uint8). Demonstrations are not copied: they are reloaded from their dataset;
* ``learner.json``: the resolved run config and counters, for people and for the resume check.

Folders are committed with the imitation trainer's protocol
(:func:`~robot_learning.training.checkpoint.commit_checkpoint`: temporary folder, fsync, rename,
then the ``last`` symlink), so a run killed at any moment resumes from a complete checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from robot_learning.fileio import naming_path
from robot_learning.training import checkpoint as ckpt

LEARNER_FILE = "learner.safetensors"
REPLAY_FILE = "replay.safetensors"
META_FILE = "learner.json"
FORMAT = "robot_learning.rl_learner"


@dataclass
class LearnerCheckpoint:
    """A loaded learner checkpoint."""

    path: Path
    state: dict[str, Any]
    """Everything saved in ``learner.safetensors``."""
    replay: dict[str, np.ndarray]
    """The online buffer's :meth:`~robot_learning.rl.replay.ReplayBuffer.state_dict`."""
    meta: dict[str, Any]
    """``learner.json``: ``config``, ``env_steps``, ``updates``."""


def capture_rng(generator: np.random.Generator) -> dict[str, Any]:
    """Global RNG states plus ``generator``'s bit-generator state."""
    return {"global": ckpt.rng_state(), "generator": generator.bit_generator.state}


def restore_rng(state: dict[str, Any], generator: np.random.Generator) -> None:
    """Inverse of :func:`capture_rng` (``generator`` is restored in place)."""
    ckpt.set_rng_state(state["global"])
    generator.bit_generator.state = state["generator"]


def save_learner(
    root: Path,
    env_steps: int,
    state: dict[str, Any],
    replay: dict[str, np.ndarray],
    meta: dict[str, Any],
    keep: int | None = None,
) -> Path:
    """Commit ``root/step_<env_steps>`` atomically and point ``root/last`` at it."""

    def write(tmp: Path) -> None:
        ckpt.save_state(tmp / LEARNER_FILE, state)
        with naming_path(tmp / REPLAY_FILE):
            save_file(replay, str(tmp / REPLAY_FILE), metadata={"format": FORMAT})
        (tmp / META_FILE).write_text(json.dumps({"format": FORMAT, **meta}, indent=2) + "\n")

    return ckpt.commit_checkpoint(Path(root), env_steps, write, keep=keep)


def load_learner(root: Path, at: Path | None = None) -> LearnerCheckpoint | None:
    """The checkpoint ``at`` (a step folder), else the one ``root/last`` points to; None when there is none."""
    path = Path(at) if at is not None else ckpt.latest_checkpoint(Path(root))
    if path is None:
        return None
    missing = [f for f in (LEARNER_FILE, REPLAY_FILE, META_FILE) if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not a learner checkpoint: {missing} missing")
    meta = json.loads((path / META_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path / META_FILE} is not a {FORMAT} file (format {meta.get('format')!r})"
        )
    return LearnerCheckpoint(
        path, ckpt.load_state(path / LEARNER_FILE), load_file(str(path / REPLAY_FILE)), meta
    )
