"""Demonstrations from a LeRobotDataset as a replay buffer (the "offline" half of RLPD-style batches).

A dataset frame ``t`` holds ``obs_t``, ``action_t`` and the outcome of that action in LeRobot's
``next.*`` columns: ``next.reward``, ``next.done`` and (optional) ``next.success``. The
observation after an episode's last action is not stored in the format, which decides how the
last frame is used:

* last frame ``done`` and ``success`` -> a **termination**: all ``T`` transitions are kept, the
  final one with ``discount = 0``, so its missing next observation is never read (the buffer
  stores the last observation again as a placeholder);
* otherwise (a time limit, or no ``done`` flag at all) -> a **truncation**: the last frame's
  observation becomes the bootstrap state and its action is dropped (``T - 1`` transitions).

``done_means`` overrides that rule for datasets from tasks that terminate on failure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from robot_learning.features import ACTION, FeatureSpec
from robot_learning.rl.replay import ReplayBuffer

#: dataset columns a demonstration buffer needs besides observations and actions
REQUIRED_COLUMNS = ("next.reward", "next.done")
DONE_MEANINGS = ("success", "terminated", "truncated")


def check_demo_reward(root: str | Path, reward: str) -> None:
    """Refuse demonstrations recorded with another reward mode than the task's (``collect.json``).

    Mixed scales (dense demo rewards next to sparse online ones) silently break the critic. Datasets
    without ``collect.json`` (teleoperation) are not checked.
    """
    import json

    record = Path(root) / "collect.json"
    if not record.is_file():
        return
    recorded = ((json.loads(record.read_text()).get("config") or {}).get("task") or {}).get(
        "reward"
    )
    if recorded is not None and recorded != reward:
        raise ValueError(
            f"demonstrations {root} were collected with task.reward={recorded} but the task uses reward={reward}; "
            f"collect them again with task.reward={reward} (same seeds give the same trajectories)"
        )


def load_demos(
    root: str | Path,
    spec: FeatureSpec,
    done_means: str = "success",
    derive: Callable[[int, dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
    streams: int = 1,
    extra_rows: int = 0,
) -> ReplayBuffer:
    """A :class:`ReplayBuffer` holding every episode of the dataset at ``root``.

    Args:
        root: LeRobotDataset v3.0 folder.
        spec: the learner's observation features plus ``action``; the dataset must match them.
        done_means: how a ``done`` last frame ends the episode: ``success`` (terminated when
            ``next.success`` is set, else truncated), ``terminated`` or ``truncated``.
        derive: ``f(episode_index, {key: [T, ...]}) -> {key: [T, ...]}`` computing observation
            keys of ``spec`` the dataset does not hold (e.g. residual RL's base actions).
        streams: rings of the returned buffer; the demonstrations fill stream 0, the others are
            left for data added later (``hil_serl``: intervention segments).
        extra_rows: free rows per stream beyond what the demonstrations need.
    """
    from robot_learning.datasets import LeRobotDataset

    if done_means not in DONE_MEANINGS:
        raise ValueError(f"done_means={done_means!r} must be one of {DONE_MEANINGS}")
    ds = LeRobotDataset(root)
    missing = [c for c in REQUIRED_COLUMNS if c not in ds.features]
    if missing:
        raise ValueError(
            f"{root}: demonstrations need the columns {list(REQUIRED_COLUMNS)} for RL, missing {missing}. "
            "Datasets written by `robot-learning collect` have them; record rewards and dones as "
            "'next.reward' (float32, shape [1]) and 'next.done' (bool, shape [1])."
        )
    recorded = [k for k in spec.observation_keys if derive is None or k in ds.features]
    keys = [*recorded, ACTION]
    spec.select(keys).check_matches(ds.features, what=f"demonstrations {root}", keys=keys)
    rows = ds.num_frames + ds.num_episodes + extra_rows
    buffer = ReplayBuffer(spec, capacity=rows * streams, streams=streams)
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        reward = ep["next.reward"].reshape(-1)
        done = ep["next.done"].reshape(-1).astype(bool)
        if done[:-1].any():
            raise ValueError(
                f"{root}: episode {i} has next.done set before its last frame "
                f"(frame {int(np.argmax(done))} of {len(done)})"
            )
        success = bool(ep["next.success"].reshape(-1)[-1]) if "next.success" in ep else False
        terminated = bool(done[-1]) and (
            done_means == "terminated" or (done_means == "success" and success)
        )
        obs = {k: ep[k] for k in recorded}
        if derive is not None:
            obs.update(derive(i, obs))
        obs = {k: obs[k] for k in spec.observation_keys}
        if terminated:
            obs = {k: np.concatenate([v, v[-1:]]) for k, v in obs.items()}
            buffer.add_episode(obs, ep[ACTION], reward, terminated=True)
        elif len(reward) >= 2:
            buffer.add_episode(obs, ep[ACTION][:-1], reward[:-1], terminated=False)
    if len(buffer) == 0:
        raise ValueError(f"{root}: no usable demonstration transitions")
    return buffer
