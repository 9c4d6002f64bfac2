"""A ``VecTask`` base in the shape of IsaacGymEnvs' (``isaacgymenvs.tasks.base.vec_task``).

Subclasses build their scene in :meth:`VecTask.create_sim` with the ``isaacgym.gymapi`` calls,
apply actions in ``pre_physics_step`` and fill the batched buffers (``obs_buf``, ``rew_buf``,
``reset_buf``, ``progress_buf``, ``extras``) in ``post_physics_step``, exactly as IsaacGymEnvs
tasks do, so that the adapter (:mod:`sim.isaacgym.adapter`) drives this base and IsaacGymEnvs'
own task classes the same way. The constructor takes IsaacGymEnvs' arguments and config layout
(``env.numEnvs``, ``env.numObservations``, ``env.numActions``, ``env.maxEpisodeLength``,
``env.controlFrequencyInv``, ``env.clipObservations``, ``env.clipActions``; ``sim.dt``,
``sim.substeps``, ``sim.gravity``, ``sim.use_gpu_pipeline``, ``sim.physx.*``).

``isaacgym`` is imported when a task is built, never when this module is imported: the real
package must be imported before torch (the CLI does so for ``backend=isaacgym``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from isaacgym import gymapi


class VecTask:
    """Batched task on one Isaac Gym simulation: ``num_envs`` copies of a scene, tensors on
    ``device``, per-env resets (``reset_idx``) and time-outs (``extras["time_outs"]``)."""

    gym: gymapi.Gym
    sim: gymapi.Sim
    sim_params: gymapi.SimParams

    def __init__(
        self,
        config: dict[str, Any],
        rl_device: str,
        sim_device: str,
        graphics_device_id: int,
        headless: bool,
        virtual_screen_capture: bool = False,
        force_render: bool = False,
    ) -> None:
        from isaacgym import gymapi

        self.cfg = config
        env_cfg, sim_cfg = config["env"], config["sim"]
        self.sim_device, self.rl_device, self.headless = sim_device, rl_device, headless
        gpu = sim_device.startswith("cuda")
        self.device_id = int(sim_device.split(":")[1]) if gpu and ":" in sim_device else 0
        self.use_gpu_pipeline = bool(sim_cfg.get("use_gpu_pipeline", gpu))
        self.device = sim_device if self.use_gpu_pipeline else "cpu"
        self.graphics_device_id = -1 if headless else graphics_device_id
        self.num_envs = int(env_cfg["numEnvs"])
        self.num_obs = int(env_cfg["numObservations"])
        self.num_actions = int(env_cfg["numActions"])
        self.max_episode_length = int(env_cfg.get("maxEpisodeLength", 500))
        self.control_freq_inv = int(env_cfg.get("controlFrequencyInv", 1))
        self.clip_obs = float(env_cfg.get("clipObservations", np.inf))
        self.clip_actions = float(env_cfg.get("clipActions", 1.0))

        self.gym = gymapi.acquire_gym()
        self.sim_params = self._sim_params(sim_cfg)
        self.dt = self.sim_params.dt
        self.physics_engine = gymapi.SIM_PHYSX
        self.create_sim()
        self.gym.prepare_sim(self.sim)
        self.closed = False

        n, dev = self.num_envs, self.device
        self.obs_buf = torch.zeros((n, self.num_obs), device=dev, dtype=torch.float)
        self.rew_buf = torch.zeros(n, device=dev, dtype=torch.float)
        self.reset_buf = torch.ones(n, device=dev, dtype=torch.long)
        self.timeout_buf = torch.zeros(n, device=dev, dtype=torch.long)
        self.progress_buf = torch.zeros(n, device=dev, dtype=torch.long)
        self.extras: dict[str, Any] = {}
        self.allocate_buffers()

    def _sim_params(self, sim_cfg: dict[str, Any]) -> Any:
        from isaacgym import gymapi

        params = gymapi.SimParams()
        params.dt = float(sim_cfg.get("dt", 1 / 60))
        params.substeps = int(sim_cfg.get("substeps", 2))
        params.up_axis = gymapi.UP_AXIS_Z
        params.gravity = gymapi.Vec3(*sim_cfg.get("gravity", (0.0, 0.0, -9.81)))
        params.use_gpu_pipeline = self.use_gpu_pipeline
        for key, value in sim_cfg.get("physx", {}).items():
            setattr(params.physx, key, value)
        params.physx.use_gpu = self.sim_device.startswith("cuda")
        return params

    # hooks a task implements --------------------------------------------------------------
    def create_sim(self) -> None:
        """Create ``self.sim`` (``gym.create_sim``), the ground and the ``num_envs`` envs."""
        raise NotImplementedError

    def allocate_buffers(self) -> None:
        """Acquire the simulator's state tensors (after ``prepare_sim``)."""

    def pre_physics_step(self, actions: torch.Tensor) -> None:
        """Apply ``actions`` ``[num_envs, num_actions]`` to the simulation."""
        raise NotImplementedError

    def post_physics_step(self) -> None:
        """Reset the envs flagged last step, then fill observations, rewards and resets."""
        raise NotImplementedError

    def reset_idx(self, env_ids: torch.Tensor) -> None:
        """Put the envs ``env_ids`` in a new initial state (drawn from torch's generator)."""
        raise NotImplementedError

    def compute_observations(self, env_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Fill ``obs_buf`` (rows ``env_ids``, default all) from the state tensors."""
        raise NotImplementedError

    # the loop IsaacGymEnvs' training scripts call -------------------------------------------
    def step(self, actions: torch.Tensor) -> tuple[dict[str, torch.Tensor], Any, Any, dict]:
        """One control step of every env; returns ``({"obs": ...}, rewards, resets, extras)``."""
        actions = torch.clamp(actions.to(self.device), -self.clip_actions, self.clip_actions)
        self.pre_physics_step(actions)
        for _ in range(self.control_freq_inv):
            self.gym.simulate(self.sim)
        if self.device == "cpu":
            self.gym.fetch_results(self.sim, True)
        self.post_physics_step()
        last = self.progress_buf >= self.max_episode_length - 1
        self.timeout_buf = torch.where(
            last & (self.reset_buf != 0),
            torch.ones_like(self.timeout_buf),
            torch.zeros_like(self.timeout_buf),
        )
        self.extras["time_outs"] = self.timeout_buf.to(self.rl_device)
        obs = torch.clamp(self.obs_buf, -self.clip_obs, self.clip_obs).to(self.rl_device)
        return (
            {"obs": obs},
            self.rew_buf.to(self.rl_device),
            self.reset_buf.to(self.rl_device),
            self.extras,
        )

    def reset(self) -> dict[str, torch.Tensor]:
        """Observations after one zero-action step (IsaacGymEnvs' reset of all envs)."""
        zeros = torch.zeros((self.num_envs, self.num_actions), device=self.rl_device)
        return self.step(zeros)[0]

    def close(self) -> None:
        """Free the simulation."""
        if not getattr(self, "closed", True):
            self.gym.destroy_sim(self.sim)
        self.closed = True
