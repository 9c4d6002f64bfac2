"""Scripted expert of the Isaac Gym cart-pole (``task=isaacgym_cartpole``): a state-feedback law."""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_expert


@register_expert("isaacgym_cartpole")
class CartpoleExpert:
    """Push the cart under the falling pole, then back to the centre (linear state feedback on
    ``[cart position, cart velocity, pole angle, pole angular velocity]``, clipped to [-1, 1])."""

    #: feedback gains, in units of the action ([-1, 1] = the task's maxPushEffort)
    gains = np.array([0.05, 0.1, 2.0, 0.3])

    def __init__(self, env) -> None:
        self.env = env

    def reset(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        state = np.asarray(obs["observation.state"], np.float64)
        return np.clip([float(self.gains @ state)], -1.0, 1.0).astype(np.float32)
