"""A trained policy (checkpoint or exported bundle) as the action source of ``collect``.

``collect policy=DIR`` records what a policy does instead of what a scripted expert does: the
teacher's episodes for distilling a large policy (a VLA) into a small student (RPD-style: the
student is any zoo policy trained on them, ``only_success=true`` keeps the teacher's successes),
or on-policy data for DAgger-style relabelling. The policy needs only the observations (no
privileged task state), so this also records on a real robot. Language policies get each
episode's instruction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robot_learning.envs import episode_instruction
from robot_learning.language import TASK_KEY
from robot_learning.runtime.bundle import BUNDLE_FILE


class PolicyActions:
    """Expert protocol (``reset(seed)``, ``act(obs)``) over a checkpoint or a bundle."""

    def __init__(self, path: str | Path, env: Any, runtime: str = "auto") -> None:
        from robot_learning.evaluation import check_task_features

        path = Path(path)
        self.env = env
        if (path / BUNDLE_FILE).is_file():
            from robot_learning.runtime import load_bundle

            self.policy = load_bundle(path, runtime=runtime)
            self._torch = None
        else:
            import torch

            from robot_learning.cli.eval import checkpoint_dir
            from robot_learning.policy import Policy

            self.policy = Policy.load(checkpoint_dir(path))
            self._torch = torch
        check_task_features(
            self.policy.features,
            list(self.policy.input_keys),
            env.features,
            what=f"task {env.unwrapped.cfg.name!r} env spec vs policy {path}",
        )
        self.uses_language = bool(getattr(self.policy, "uses_language", False))

    def reset(self, seed: int | None = None) -> None:
        """New episode: forget the history; the sampler noise restarts from ``seed``."""
        self.policy.reset()
        if seed is None:
            return
        if self._torch is None:
            self.policy.reseed(seed)
        else:
            self._generator = self._torch.Generator().manual_seed(seed)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The policy's action for ``obs`` (plus the episode's instruction for language policies)."""
        if self.uses_language:
            obs = {**obs, TASK_KEY: episode_instruction(self.env)}
        if self._torch is None:
            return self.policy.select_action(obs)
        noise = self._torch.randn(
            (1, *self.policy.noise_shape), generator=getattr(self, "_generator", None)
        )
        return self.policy.select_action(obs, noise=noise)
