"""Data collection for off-policy RL: N environments stepped in lockstep into a replay buffer.

Environment ``e`` is stream ``e`` of the buffer. Episodes are numbered in the order they start
(environments in index order) and episode ``k`` resets with ``seed + k``, so a run is a pure
function of its seeds and actions.

Resuming mid-episode. Simulator state cannot be saved generically, so the collector stores,
per environment, the running episode's seed and actions; :meth:`Collector.load_state_dict`
resets with that seed, replays the actions and checks that the observation it reaches is
bit-identical to the saved one (an environment that is not deterministic fails loudly there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_learning.env_threads import EnvThreads, step_envs
from robot_learning.features import ACTION
from robot_learning.rl.replay import ReplayBuffer


@dataclass
class EpisodeStats:
    """One finished training or evaluation episode."""

    seed: int
    ret: float
    """Undiscounted return."""
    length: int
    success: bool
    """``info["is_success"]`` was true at some step."""


def stack_obs(obs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """List of per-env observation dicts -> dict of ``[N, ...]`` arrays."""
    return {k: np.stack([o[k] for o in obs]) for k in obs[0]}


class Collector:
    """Steps ``envs`` with given actions, writes every transition into ``buffer``, tracks episodes."""

    def __init__(
        self, envs: list[Any], buffer: ReplayBuffer, seed: int, threads: EnvThreads | None = None
    ) -> None:
        if len(envs) != buffer.streams:
            raise ValueError(
                f"{len(envs)} environments but the buffer has {buffer.streams} streams"
            )
        self.envs, self.buffer, self.seed = envs, buffer, seed
        self.threads = threads or EnvThreads(1)  # steps the environments (in parallel if > 1)
        act = envs[0].features[ACTION]
        self.low = np.asarray(act.low, np.float32).reshape(act.shape)
        self.high = np.asarray(act.high, np.float32).reshape(act.shape)
        self.next_episode = 0
        self._obs: list[dict[str, np.ndarray]] = [{} for _ in envs]
        self._seed = [0] * len(envs)
        self._actions: list[list[np.ndarray]] = [[] for _ in envs]
        self._ret = [0.0] * len(envs)
        self._success = [False] * len(envs)

    @property
    def obs(self) -> dict[str, np.ndarray]:
        """Current observations of all environments, ``[N, ...]`` per key."""
        return stack_obs(self._obs)

    def _reset(self, e: int) -> None:
        seed = self.seed + self.next_episode
        self.next_episode += 1
        obs, info = self.envs[e].reset(seed=seed)
        self._obs[e], self._seed[e], self._actions[e] = obs, seed, []
        self._ret[e], self._success[e] = 0.0, bool(info.get("is_success", False))

    def start(self) -> None:
        """Reset every environment (episodes 0..N-1)."""
        for e in range(len(self.envs)):
            self._reset(e)

    def step(self, actions: np.ndarray) -> list[EpisodeStats]:
        """Apply ``actions`` ``[N, A]`` (clipped to the bounds); returns the episodes that ended."""
        actions = np.clip(np.asarray(actions, np.float32), self.low, self.high)
        obs, results = self.obs, step_envs(self.threads, self.envs, actions)
        next_obs = stack_obs([r[0] for r in results])
        terminated = np.array([r[2] for r in results], bool)
        truncated = np.array([r[3] for r in results], bool)
        reward = np.array([r[1] for r in results], np.float32)
        self.buffer.add(obs, actions, reward, next_obs, terminated, truncated)
        finished = []
        for e, (o, r, term, trunc, info) in enumerate(results):
            self._obs[e] = o
            self._actions[e].append(actions[e])
            self._ret[e] += float(r)
            self._success[e] = self._success[e] or bool(info.get("is_success", False))
            if term or trunc:
                finished.append(
                    EpisodeStats(
                        self._seed[e], self._ret[e], len(self._actions[e]), self._success[e]
                    )
                )
                self._reset(e)
        return finished

    def state_dict(self) -> dict[str, Any]:
        """Episode counter and, per environment, the running episode (seed, actions, totals, obs)."""
        return {
            "next_episode": self.next_episode,
            "envs": [
                {
                    "seed": self._seed[e],
                    "ret": self._ret[e],
                    "success": self._success[e],
                    "actions": np.asarray(self._actions[e], np.float32).reshape(
                        -1, *self.low.shape
                    ),
                    "obs": dict(self._obs[e]),
                }
                for e in range(len(self.envs))
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output by replaying each running episode (see module doc)."""
        if len(state["envs"]) != len(self.envs):
            raise ValueError(
                f"collector state has {len(state['envs'])} environments, this run {len(self.envs)}"
            )
        self.next_episode = int(state["next_episode"])
        replayed = self._replay([(int(s["seed"]), s["actions"]) for s in state["envs"]])
        for e, saved in enumerate(state["envs"]):
            obs = replayed[e]
            differ = [k for k in saved["obs"] if not np.array_equal(obs[k], saved["obs"][k])]
            if differ:
                raise ValueError(
                    f"cannot resume: replaying environment {e}'s episode (seed {saved['seed']}, "
                    f"{len(saved['actions'])} steps) gives different {differ}; the task is not deterministic"
                )
            self._obs[e], self._seed[e] = obs, int(saved["seed"])
            self._actions[e] = list(saved["actions"])
            self._ret[e], self._success[e] = float(saved["ret"]), bool(saved["success"])

    def _replay(self, episodes: list[tuple[int, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Each env's observation after resetting with its seed and replaying its actions.

        The replays end together: env ``e`` starts ``longest - len(actions_e)`` steps in, so
        views of one batched simulator (which all step at every step) are each reset right
        before their own replay and none steps after it.
        """
        longest = max(len(actions) for _, actions in episodes)
        starts = [longest - len(actions) for _, actions in episodes]
        obs: list[dict[str, np.ndarray]] = [{} for _ in self.envs]
        for t in range(longest + 1):
            for e, (seed, _) in enumerate(episodes):
                if starts[e] == t:
                    obs[e] = self.envs[e].reset(seed=seed)[0]
            if t == longest:
                break
            moving = [e for e in range(len(self.envs)) if starts[e] <= t]
            actions = [episodes[e][1][t - starts[e]] for e in moving]
            results = step_envs(self.threads, [self.envs[e] for e in moving], actions)
            for e, result in zip(moving, results, strict=True):
                obs[e] = result[0]
        return obs


def run_episodes(
    env: Any, act: Callable[[dict[str, np.ndarray]], np.ndarray], seeds: list[int]
) -> list[EpisodeStats]:
    """Roll out ``act`` (``[1, ...]`` observations -> ``[1, A]`` actions) for one episode per seed."""
    out = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        ret, length, success, done = 0.0, 0, bool(info.get("is_success", False)), False
        while not done:
            action = act({k: v[None] for k, v in obs.items()})[0]
            obs, r, term, trunc, info = env.step(action)
            ret, length = ret + float(r), length + 1
            success = success or bool(info.get("is_success", False))
            done = bool(term or trunc)
        out.append(EpisodeStats(seed, ret, length, success))
    return out
