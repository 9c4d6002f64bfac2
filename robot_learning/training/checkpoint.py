"""Training checkpoints without pickle: tensors in safetensors, structure in JSON.

A checkpoint is a folder ``out/checkpoints/step_XXXXXX/`` holding

* ``model.safetensors`` + ``config.json``: the deployable policy (EMA weights when EMA is on),
  written by ``Policy.save`` with the resolved training config embedded, so ``eval`` and
  ``export`` take the folder as it is;
* ``training_state.safetensors``: everything else a resumed run needs to continue bit for bit:
  the raw training weights, optimizer and EMA state, the RNG states and the step. Nested
  Python structures (``optimizer.state_dict()``, RNG state tuples) are split into their tensors
  (saved as safetensors entries) and a JSON skeleton (saved in the file's metadata) that
  references them, so nothing is ever unpickled.

Commit protocol: the folder is written under a hidden temporary name, fsynced, renamed into
place, and only then is the ``last`` symlink switched to it (``os.replace`` of a fresh
symlink, atomic on POSIX). A run killed at any point leaves ``last`` on a complete checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from robot_learning.datasets.atomic import fsync_path
from robot_learning.fileio import naming_path

log = logging.getLogger(__name__)

STATE_FILE = "training_state.safetensors"
LAST = "last"
STATE_FORMAT = 1
_STEP_DIR = re.compile(r"^step_(\d+)$")
_TMP_PREFIX = ".tmp-"


# --------------------------------------------------------------------------- (de)serialisation
def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """JSON skeleton of ``obj`` with every tensor/ndarray moved into ``tensors`` (by path).

    Handles dicts (non-string keys kept via an item list), lists, tuples, tensors, numpy
    arrays and JSON scalars; anything else is an error naming its path (no pickle fallback).
    """
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        # stored as raw bytes: safetensors has no uint32 etc. for every numpy dtype
        tensors[path] = torch.from_numpy(
            np.ascontiguousarray(obj).view(np.uint8).reshape(-1).copy()
        )
        return {"__ndarray__": path, "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: flatten_state(v, tensors, f"{path}/{k}") for k, v in obj.items()}
        return {
            "__items__": [
                [
                    flatten_state(k, tensors, f"{path}/key{i}"),
                    flatten_state(v, tensors, f"{path}/{k}"),
                ]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten_state(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(
        f"cannot store {type(obj).__name__} at {path or '/'} in a checkpoint (no pickle)"
    )


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if "__ndarray__" in skeleton:
        raw = tensors[skeleton["__ndarray__"]].numpy().tobytes()
        return (
            np.frombuffer(raw, dtype=np.dtype(skeleton["dtype"])).reshape(skeleton["shape"]).copy()
        )
    if "__tuple__" in skeleton:
        return tuple(unflatten_state(v, tensors) for v in skeleton["__tuple__"])
    if "__items__" in skeleton:
        return {
            unflatten_state(k, tensors): unflatten_state(v, tensors)
            for k, v in skeleton["__items__"]
        }
    return {k: unflatten_state(v, tensors) for k, v in skeleton.items()}


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts of tensors/arrays/scalars) as one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten_state(state, tensors)
    metadata = {
        "format": "robot_learning.training_state",
        "format_version": str(STATE_FORMAT),
        "state": json.dumps(skeleton),
    }
    with naming_path(path):
        save_file(tensors, str(path), metadata=metadata)


def load_state(path: Path) -> dict[str, Any]:
    """Read a file written by :func:`save_state`."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path.parent} is not a resumable checkpoint: {path.name} is missing"
        )
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    if metadata.get("format") != "robot_learning.training_state" or "state" not in metadata:
        raise ValueError(
            f"{path} is not a robot_learning training state (metadata {sorted(metadata)})"
        )
    return unflatten_state(json.loads(metadata["state"]), tensors)


# --------------------------------------------------------------------------- RNG
def rng_state() -> dict[str, Any]:
    """Every global RNG the training step may draw from."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` output."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- folders
def checkpoint_dir(root: Path, step: int) -> Path:
    """``root/step_XXXXXX``."""
    return root / f"step_{step:06d}"


def commit_checkpoint(root: Path, step: int, write: Any, keep: int | None = None) -> Path:
    """Write a checkpoint atomically with ``write(tmp_dir)``, point ``last`` at it, prune old ones.

    ``keep``: how many step folders to keep (``None`` keeps all); ``last`` is never pruned.
    """
    final = write_atomic_dir(checkpoint_dir(root, step), write)
    link = root / f"{_TMP_PREFIX}{LAST}"
    link.unlink(missing_ok=True)
    os.symlink(final.name, link)  # relative: the run folder may be moved
    os.replace(link, root / LAST)
    fsync_path(root)
    if keep is not None:
        for old in list_checkpoints(root)[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Committed step folders, oldest first."""
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _STEP_DIR.match(p.name)) and p.is_dir()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    """The folder ``last`` points to (falling back to the newest step folder), or None."""
    for tmp in root.glob(f"{_TMP_PREFIX}*") if root.is_dir() else []:
        kept = root / tmp.name.removeprefix(f"{_TMP_PREFIX}old-")
        if tmp.name.startswith(f"{_TMP_PREFIX}old-") and not kept.exists():
            os.replace(tmp, kept)  # killed between the two renames of a re-save: keep the old copy
            continue
        log.info("removing leftover %s of an interrupted checkpoint write", tmp)
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    last = root / LAST
    if last.exists():
        return last.resolve()
    found = list_checkpoints(root)
    return found[-1] if found else None


def write_atomic_dir(final: Path, write: Any) -> Path:
    """Write a whole folder with ``write(tmp_dir)`` and rename it onto ``final`` (replacing it)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{_TMP_PREFIX}{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        for f in tmp.iterdir():
            if f.is_file():
                fsync_path(f)
    except BaseException:  # a failed or interrupted write leaves no temporary folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f"{_TMP_PREFIX}old-{final.name}")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old.exists() and not final.exists():
            os.replace(old, final)  # keep the previous copy in place
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    fsync_path(final.parent)
    return final
