"""End-effector delta actions to joint targets: what lets an ``ee_delta_pos`` policy drive a
joint position controller.

Per command: the end-effector target moves by ``action[:3] * action_scale`` (clipped to the
target box), stays within ``max_lead`` of the measured end effector and (optionally) within a
reach sphere, then one damped least-squares IK step from the previous joint target gives the
next joint target (:class:`~robot_learning.kinematics.ArmKinematics`). The gripper command in
[-1, 1] maps linearly to each finger's position, -1 open (``gripper_max``) .. +1 closed (0).
These are the simulated Panda tasks' control laws, so a policy trained there behaves the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_learning.kinematics import ArmKinematics


@dataclass
class EeControlSettings:
    """The control law's constants (from the robot's config)."""

    action_scale: float
    target_low: np.ndarray
    target_high: np.ndarray
    max_lead: float
    rotation: np.ndarray
    reach_center: np.ndarray | None
    reach_radius: float | None
    reach_offset: np.ndarray
    gripper_max: float


class EeDeltaController:
    """Holds the end-effector and joint targets between commands (see the module docstring)."""

    def __init__(self, kinematics: ArmKinematics, settings: EeControlSettings) -> None:
        self.kin, self.s = kinematics, settings
        self.ee_target: np.ndarray | None = None
        self.q_target: np.ndarray | None = None

    def sync(self, q_measured: np.ndarray) -> None:
        """Targets := the measured pose (after connecting, homing or an e-stop)."""
        self.q_target = np.asarray(q_measured, np.float64).copy()
        self.ee_target = self.kin.fk(self.q_target)[0]

    def _reachable(self, target: np.ndarray) -> np.ndarray:
        s = self.s
        if s.reach_center is None or s.reach_radius is None:
            return target
        point = target + s.reach_offset
        offset = point - s.reach_center
        dist = float(np.linalg.norm(offset))
        if dist <= s.reach_radius:
            return target
        return s.reach_center + offset * (s.reach_radius / dist) - s.reach_offset

    def step(self, action: np.ndarray, q_measured: np.ndarray) -> tuple[np.ndarray, float]:
        """Joint targets and the finger position for one ``[dx, dy, dz, gripper]`` command."""
        if self.q_target is None:
            self.sync(q_measured)
        s = self.s
        action = np.asarray(action, np.float32)  # the simulator scales float32 actions, too
        ee = self.kin.fk(q_measured)[0]
        step = float(s.action_scale) * action[:3]
        target = np.clip(self.ee_target + step, s.target_low, s.target_high)
        target = ee + np.clip(target - ee, -s.max_lead, s.max_lead)
        self.ee_target = self._reachable(target)
        self.q_target = self.kin.ik(self.ee_target, s.rotation, self.q_target)
        finger = 0.5 * s.gripper_max * (1.0 - float(action[3]))
        return self.q_target.copy(), finger
