"""Cart-pole balancing as an Isaac Gym ``VecTask`` (the scene of IsaacGymEnvs' first example).

A cart on a rail (effort-driven prismatic joint) carries a free pole (revolute joint); the
observation is ``[cart position, cart velocity, pole angle, pole angular velocity]``, the action
a force on the cart in ``[-1, 1]`` times ``env.maxPushEffort``. An episode fails when the cart
leaves ``env.resetDist`` or the pole falls past 90 degrees, and succeeds when the pole is still
up at the time limit (``extras["successes"]``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sim.isaacgym.adapter import register_vec_task
from sim.isaacgym.vec_task import VecTask

if TYPE_CHECKING:
    from isaacgym import gymapi

ASSETS = Path(__file__).resolve().parent / "assets"

#: defaults of the task's config; ``task.vec_task_cfg`` overrides any of them
DEFAULT_CFG: dict[str, Any] = {
    "env": {
        "numObservations": 4,
        "numActions": 1,
        "envSpacing": 4.0,
        "maxEpisodeLength": 200,
        "controlFrequencyInv": 2,
        "resetDist": 3.0,
        "maxPushEffort": 20.0,
        "initAngle": 0.2,
        "clipObservations": 5.0,
        "clipActions": 1.0,
    },
    "sim": {"dt": 0.025, "substeps": 2, "gravity": [0.0, 0.0, -9.81], "physx": {"num_threads": 1}},
}


@register_vec_task("cartpole", DEFAULT_CFG)
class Cartpole(VecTask):
    """Balance a pole on a cart, ``num_envs`` copies on one simulation."""

    description = "balance the pole upright on the cart"

    def create_sim(self) -> None:
        from isaacgym import gymapi

        env_cfg = self.cfg["env"]
        self.reset_dist = float(env_cfg["resetDist"])
        self.max_push_effort = float(env_cfg["maxPushEffort"])
        self.init_angle = float(env_cfg["initAngle"])
        self.sim = self.gym.create_sim(
            self.device_id, self.graphics_device_id, self.physics_engine, self.sim_params
        )
        plane = gymapi.PlaneParams()
        plane.normal = gymapi.Vec3(0.0, 0.0, 1.0)
        self.gym.add_ground(self.sim, plane)

        options = gymapi.AssetOptions()
        options.fix_base_link = True
        asset = self.gym.load_asset(self.sim, str(ASSETS), "cartpole.urdf", options)
        self.num_dof = self.gym.get_asset_dof_count(asset)
        pose = gymapi.Transform()
        pose.p = gymapi.Vec3(0.0, 0.0, 2.0)
        spacing = float(env_cfg["envSpacing"])
        lower, upper = gymapi.Vec3(-spacing, -spacing, 0.0), gymapi.Vec3(spacing, spacing, spacing)
        per_row = int(math.sqrt(self.num_envs))
        self.envs: list[gymapi.Env] = []
        self.handles: list[int] = []
        for i in range(self.num_envs):
            env = self.gym.create_env(self.sim, lower, upper, per_row)
            handle = self.gym.create_actor(env, asset, pose, "cartpole", i, 1, 0)
            props = self.gym.get_actor_dof_properties(env, handle)
            props["driveMode"][0] = gymapi.DOF_MODE_EFFORT
            props["driveMode"][1] = gymapi.DOF_MODE_NONE
            props["stiffness"][:] = 0.0
            props["damping"][:] = 0.0
            self.gym.set_actor_dof_properties(env, handle, props)
            self.envs.append(env)
            self.handles.append(handle)

    def allocate_buffers(self) -> None:
        from isaacgym import gymtorch

        dof_state = gymtorch.wrap_tensor(self.gym.acquire_dof_state_tensor(self.sim))
        self.dof_state = dof_state
        self.dof_pos = dof_state.view(self.num_envs, self.num_dof, 2)[..., 0]
        self.dof_vel = dof_state.view(self.num_envs, self.num_dof, 2)[..., 1]
        self.forces = torch.zeros(
            (self.num_envs, self.num_dof), device=self.device, dtype=torch.float
        )
        self.extras["successes"] = torch.zeros(self.num_envs, device=self.device)

    def pre_physics_step(self, actions: torch.Tensor) -> None:
        from isaacgym import gymtorch

        self.forces[:, 0] = actions[:, 0].to(self.device) * self.max_push_effort
        self.gym.set_dof_actuation_force_tensor(self.sim, gymtorch.unwrap_tensor(self.forces))

    def post_physics_step(self) -> None:
        self.progress_buf += 1
        flagged = self.reset_buf.nonzero(as_tuple=False).squeeze(-1)
        if len(flagged) > 0:
            self.reset_idx(flagged)
        self.gym.refresh_dof_state_tensor(self.sim)
        self.compute_observations()
        self.compute_reward()

    def compute_observations(self, env_ids: torch.Tensor | None = None) -> torch.Tensor:
        rows = slice(None) if env_ids is None else env_ids
        self.obs_buf[rows, 0] = self.dof_pos[rows, 0]
        self.obs_buf[rows, 1] = self.dof_vel[rows, 0]
        self.obs_buf[rows, 2] = self.dof_pos[rows, 1]
        self.obs_buf[rows, 3] = self.dof_vel[rows, 1]
        return self.obs_buf

    def compute_reward(self) -> None:
        cart_pos, cart_vel = self.obs_buf[:, 0], self.obs_buf[:, 1]
        angle, spin = self.obs_buf[:, 2], self.obs_buf[:, 3]
        reward = 1.0 - angle * angle - 0.01 * cart_vel.abs() - 0.005 * spin.abs()
        failed = (cart_pos.abs() > self.reset_dist) | (angle.abs() > math.pi / 2)
        self.rew_buf[:] = torch.where(failed, torch.full_like(reward, -2.0), reward)
        timed_out = self.progress_buf >= self.max_episode_length - 1
        self.reset_buf[:] = (failed | timed_out).long()
        self.extras["successes"] = (timed_out & ~failed).float()

    def reset_idx(self, env_ids: torch.Tensor) -> None:
        from isaacgym import gymtorch

        n = len(env_ids)
        draw = torch.rand((n, self.num_dof), device=self.device) - 0.5
        self.dof_pos[env_ids] = draw * torch.tensor([0.4, 2 * self.init_angle], device=self.device)
        draw = torch.rand((n, self.num_dof), device=self.device) - 0.5
        self.dof_vel[env_ids] = draw * 0.1
        ids = env_ids.to(dtype=torch.int32)
        self.gym.set_dof_state_tensor_indexed(
            self.sim,
            gymtorch.unwrap_tensor(self.dof_state),
            gymtorch.unwrap_tensor(ids),
            len(ids),
        )
        self.reset_buf[env_ids] = 0
        self.progress_buf[env_ids] = 0
