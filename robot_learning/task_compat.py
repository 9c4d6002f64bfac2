"""Whether a policy fits a task: its features (bounds, control mode and names completed from the
task where a LeRobot-schema dataset lacks them) and its control rate; and the task settings a
policy's features imply. Used by evaluation, training, export and the robot commands."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from robot_learning.features import ACTION, IMAGE_PREFIX, FeatureMismatchError, FeatureSpec

log = logging.getLogger(__name__)


def task_overrides_for(features: FeatureSpec) -> dict[str, Any]:
    """Task settings implied by a policy's/dataset's features: pixels mode, image size, cameras."""
    cameras = [k[len(IMAGE_PREFIX) :] for k in features.image_keys]
    if not cameras:
        return {"obs": "state"}
    return {
        "obs": "pixels",
        "image_size": int(features[features.image_keys[0]].shape[0]),
        "cameras": tuple(cameras),
    }


class ControlRateMismatchError(ValueError):
    """A policy would run at another control rate than the one it was trained/exported for."""


def checkpoint_control_rate(checkpoint: str | Path) -> float | None:
    """The control rate a checkpoint was trained at (its dataset's fps, recorded as
    ``train_config.fps`` in ``config.json``); None when the checkpoint does not record it."""
    import json

    path = Path(checkpoint) / "config.json"
    try:
        fps = (json.loads(path.read_text()).get("train_config") or {}).get("fps")
    except (OSError, ValueError):
        return None
    return float(fps) if fps else None


def check_control_rate(
    policy_hz: float | None, task_hz: float | None, policy: str, task: str
) -> None:
    """Raise :class:`ControlRateMismatchError` naming both rates unless they agree (None: unknown, no check).

    A policy's actions (deltas, targets) are meant to be applied for one period of the rate its
    demonstrations were recorded at; at another rate every action lasts too long or too short.
    """
    if not policy_hz or not task_hz or math.isclose(float(policy_hz), float(task_hz), rel_tol=1e-6):
        return
    raise ControlRateMismatchError(
        f"{policy} acts at {float(policy_hz):g} Hz but {task} runs at {float(task_hz):g} Hz: every action "
        f"would be applied for {float(policy_hz) / float(task_hz):.3g}x its intended duration. "
        f"Use a task/robot that runs at {float(policy_hz):g} Hz (for backend=gymnasium pass "
        f"task.fps={float(policy_hz):g}), or re-collect the demonstrations at {float(task_hz):g} Hz, "
        "retrain and re-export."
    )


def task_rate_hz(env: Any) -> float | None:
    """The control rate of a built task env (``env.fps``), None if it declares none."""
    fps = getattr(env, "fps", None) or getattr(getattr(env, "unwrapped", None), "fps", None)
    return float(fps) if fps else None


def check_task_features(
    features: FeatureSpec, keys: list[str], env_features: FeatureSpec, what: str
) -> FeatureSpec:
    """Raise :class:`FeatureMismatchError` naming every key of ``keys`` that the env does not match.

    Fields a LeRobot-schema dataset cannot carry (bounds, control mode, element names) are taken
    from the task when everything else matches, with a warning; returns the completed spec.
    """
    completed = task_completed_features(features, env_features, what)
    try:
        completed.check_matches(env_features, what=what, keys=[*keys, ACTION])
    except FeatureMismatchError as exc:
        raise FeatureMismatchError(
            f"{exc}. If the data was recorded on this task with another tool, "
            "`robot-learning dataset set-spec DIR task=<name>` writes the task's bounds, control "
            "mode and names into the dataset (LeRobot still loads it)"
        ) from None
    return completed


def task_completed_features(
    features: FeatureSpec, env_features: FeatureSpec, what: str
) -> FeatureSpec:
    """``features`` with the bounds, control mode and names it lacks taken from the task (warned)."""
    completed, notes = features.fill_unknown(env_features)
    if notes:
        log.warning(
            "%s: the policy's features carry no %s; taking them from the task (run "
            "`robot-learning dataset set-spec DIR task=<name>` to store them in the dataset)",
            what,
            "; ".join(notes),
        )
    return completed
