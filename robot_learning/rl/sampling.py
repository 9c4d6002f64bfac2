"""Symmetric sampling (RLPD, Ball et al. 2023): each batch half demonstrations, half online data.

With an even batch size the halves are exact. With an odd one the extra transition comes from
the online buffer (``n_demo = batch_size // 2``), so demos never outweigh fresh experience.
Without demonstrations every transition is online.
"""

from __future__ import annotations

import numpy as np

from robot_learning.rl.replay import ReplayBuffer


class SymmetricSampler:
    """Draws batches from an online buffer and (optionally) a demonstration buffer."""

    def __init__(self, online: ReplayBuffer, demos: ReplayBuffer | None = None) -> None:
        if demos is not None and demos.spec != online.spec:
            raise ValueError(
                "demonstration and online buffers store different features: "
                + "; ".join(demos.spec.diff(online.spec))
            )
        self.online, self.demos = online, demos

    def split(self, batch_size: int) -> tuple[int, int]:
        """(demo, online) counts of a batch of ``batch_size``."""
        n_demo = batch_size // 2 if self.demos is not None else 0
        return n_demo, batch_size - n_demo

    def sample(
        self, batch_size: int, rng: np.random.Generator, n_step: int = 1, gamma: float = 0.99
    ) -> dict[str, object]:
        """A batch as :meth:`ReplayBuffer.gather` returns it, demos first, plus ``is_demo`` ``[B]``."""
        n_demo, n_online = self.split(batch_size)
        online = self.online.sample(n_online, rng, n_step, gamma)
        if n_demo == 0:
            return {**online, "is_demo": np.zeros(n_online, bool)}
        assert self.demos is not None
        demo = self.demos.sample(n_demo, rng, n_step, gamma)
        out: dict[str, object] = {}
        for key, value in demo.items():
            other = online[key]
            if isinstance(value, dict):
                out[key] = {k: np.concatenate([value[k], other[k]]) for k in value}  # type: ignore[index]
            else:
                out[key] = np.concatenate([value, other])
        out["is_demo"] = np.arange(batch_size) < n_demo
        return out
