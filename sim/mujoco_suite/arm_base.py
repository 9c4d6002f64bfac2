"""MuJoCo base of the Panda arm tasks: end-effector delta control over joint position servos.

Control stack (one env step = 1 / ``arm_common.FPS`` s):

1. the normalised action moves an end-effector *target* by up to ``ACTION_SCALE`` metres per
   axis (``arm_common.ee_target``, clipped to the workspace box); the target is kept within
   ``max_lead`` of the measured tcp, so blocked motion (table, hole rim) cannot wind up an ever
   larger servo force, and inside the arm's reach (:func:`reachable`);
2. one damped-least-squares differential-IK iteration per step
   (:class:`~robot_learning.kinematics.ArmKinematics`, from the previous joint target) turns the target position plus a fixed "pointing down, fixed
   yaw" orientation into joint targets, with a nullspace pull towards ``Q_HOME`` (7 joints for
   a 6-D task) and the joint change limited by the Panda's joint velocity limits;
3. the joint position servos receive targets linearly interpolated over the physics substeps,
   so the arm moves smoothly instead of jumping at 10 Hz; links are gravity compensated.

Gripper: action[3] in [-1, 1] maps linearly to a finger opening, -1 fully open (0.08 m),
+1 fully closed (the servo then squeezes whatever is between the fingers).
"""

from __future__ import annotations

import numpy as np

from robot_learning.features import FeatureSpec
from robot_learning.kinematics import ArmKinematics
from sim import arm_common
from sim.mujoco_suite import panda

# mujoco comes via base, which sets MUJOCO_GL before the first import of mujoco
from sim.mujoco_suite.base import MujocoTaskEnv, mujoco

#: tcp orientation held by the controller: approach axis (hand z) down, fingers along world y
R_DOWN = np.diag([1.0, -1.0, -1.0])
#: reachability clamp: with the gripper pointing down the flange sits FLANGE_ABOVE_TCP above the
#: tcp, and keeping it within REACH_RADIUS of the shoulder (joint 2 axis) leaves the elbow bent
#: (joint 4 < ~ -0.9 rad), away from the stretched-arm singularity; the shared workspace box
#: has corners (e.g. x = 0.75, |y| = 0.35) the Panda cannot reach pointing down
SHOULDER = np.array([0.0, 0.0, 0.333])
FLANGE_ABOVE_TCP = 0.212
REACH_RADIUS = 0.76
#: Franka datasheet joint velocity limits (rad/s): bound the joint-target change per control step
JOINT_VEL_LIMIT = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])


class MujocoArmEnv(MujocoTaskEnv):
    """Shared scene, controller, reset and observations of the MuJoCo Panda tasks.

    Subclasses set ``env_state_names`` and ``task_description`` and implement
    :meth:`_objects_xml`, :meth:`_reset_objects`, :meth:`_object_state`, :meth:`evaluate` and
    :meth:`_reward_terms` (normally by calling the ``arm_common`` functions of their task).
    """

    fps = arm_common.FPS
    #: metres of end-effector target motion per action unit (read by the robot safety layer)
    action_scale = arm_common.ACTION_SCALE
    robot_type = arm_common.ROBOT_TYPE
    default_cameras = arm_common.CAMERAS
    #: names of ``observation.environment_state`` elements (state mode)
    env_state_names: tuple[str, ...] = ()
    #: physics step (s): 25 substeps per 10 Hz control step (stable with implicitfast, and half
    #: the cost of 2 ms; contact softness is then bounded by MuJoCo's 2-timestep minimum)
    timestep: float = 0.004
    #: uniform joint noise (rad) added to Q_HOME at reset when object_pose randomisation is on
    joint_noise: float = arm_common.JOINT_NOISE
    #: how far (m, per axis) the end-effector target may run ahead of the measured tcp
    max_lead: float = arm_common.MAX_LEAD
    #: damped least squares: damping, nullspace gain, IK iterations per control step (one is
    #: enough: each step starts from the previous solution and moves at most a few cm)
    ik_damping: float = 0.03
    ik_null_gain: float = 0.5
    ik_iters: int = 1

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        m = self.model
        self._arm_qadr = np.array([m.jnt_qposadr[m.joint(f"joint{i}").id] for i in range(1, 8)])
        self._arm_dadr = np.array([m.jnt_dofadr[m.joint(f"joint{i}").id] for i in range(1, 8)])
        self._finger_qadr = np.array(
            [m.jnt_qposadr[m.joint(f"finger_{s}").id] for s in ("left", "right")]
        )
        self._arm_act = np.array([m.actuator(f"act{i}").id for i in range(1, 8)])
        self._finger_act = np.array([m.actuator(f"act_finger_{s}").id for s in ("left", "right")])
        self._tcp = m.site("tcp").id
        self._dq_max = JOINT_VEL_LIMIT / self.fps
        # solved on its own MjData (the joint limits come from the model: panda.JOINT_LIMITS)
        self._kinematics = ArmKinematics(
            m,
            [f"joint{i}" for i in range(1, 8)],
            site="tcp",
            q_rest=arm_common.Q_HOME,
            damping=self.ik_damping,
            null_gain=self.ik_null_gain,
            iters=self.ik_iters,
            dq_max=self._dq_max,
        )
        self._ee_target = arm_common.EE_HOME.copy()
        self._q_target = arm_common.Q_HOME.copy()
        self._ctrl_step = np.zeros(7)

    # ----------------------------------------------------------------- scene
    def _build_xml(self) -> str:
        return panda.scene_xml(self._objects_xml(), timestep=self.timestep, name=self.cfg.name)

    def _objects_xml(self) -> str:
        """Worldbody XML of the task's objects (default: none)."""
        return ""

    def _build_features(self) -> FeatureSpec:
        return arm_common.arm_features(
            self.cfg.obs,
            self.env_state_names,
            self.cameras,
            self.cfg.image_size,
            self.cfg.env_state_slots,
        )

    # ----------------------------------------------------------------- reset
    def _reset_task(self, rng: np.random.Generator) -> None:
        q = arm_common.Q_HOME.copy()
        if self.cfg.randomization.object_pose:
            q += rng.uniform(-self.joint_noise, self.joint_noise, size=7)
        self._set_robot(q, finger=0.04)
        self._reset_objects(rng)
        self._sync_targets()

    def _reset_objects(self, rng: np.random.Generator) -> None:
        """Place the task's objects (robot already at its reset pose, kinematics up to date)."""

    def _set_robot(self, q: np.ndarray, finger: float) -> None:
        """Teleport the arm to ``q`` with both fingers at ``finger`` (m) and servos holding there."""
        d = self.data
        d.qpos[self._arm_qadr] = q
        d.qvel[self._arm_dadr] = 0.0
        d.qpos[self._finger_qadr] = finger
        d.ctrl[self._arm_act] = q
        d.ctrl[self._finger_act] = finger
        mujoco.mj_kinematics(self.model, d)

    def _sync_targets(self) -> None:
        """Controller targets := the measured pose (call after any reset-time physics)."""
        mujoco.mj_kinematics(self.model, self.data)
        self._ee_target = self.data.site_xpos[self._tcp].copy()
        self._q_target = self.data.qpos[self._arm_qadr].copy()
        self.data.ctrl[self._arm_act] = self._q_target
        self._ctrl_step[:] = 0.0

    # ----------------------------------------------------------------- control
    def _apply_action(self, action: np.ndarray) -> None:
        ee = self.data.site_xpos[self._tcp]
        target = arm_common.ee_target(self._ee_target, action)
        target = ee + np.clip(target - ee, -self.max_lead, self.max_lead)
        self._ee_target = reachable(target)
        q_prev = self._q_target
        self._q_target = self._ik(self._ee_target, q_prev)
        # ramp the servo set-points from the previous target to the new one over the substeps
        self.data.ctrl[self._arm_act] = q_prev
        self._ctrl_step = (self._q_target - q_prev) / self.n_substeps
        self.data.ctrl[self._finger_act] = 0.02 * (1.0 - float(action[3]))

    def step_joint_targets(self, q_target: np.ndarray, fingers: np.ndarray):
        """One control step towards joint position targets instead of an action (the ros2_control
        fake's joint controllers): the same servo ramp as :meth:`step`; returns its 5-tuple."""
        q_prev = self._q_target
        self._q_target = np.clip(
            np.asarray(q_target, np.float64), self._kinematics.q_lo, self._kinematics.q_hi
        )
        self.data.ctrl[self._arm_act] = q_prev
        self._ctrl_step = (self._q_target - q_prev) / self.n_substeps
        self.data.ctrl[self._finger_act] = np.clip(np.asarray(fingers, np.float64), 0.0, 0.04)
        for _ in range(self.n_substeps):
            self._before_substep()
            mujoco.mj_step(self.model, self.data)
        return self._step_result()

    def arm_description(self) -> str:
        """MJCF of the arm alone (no task objects): what a robot publishes as its description."""
        return panda.scene_xml("", timestep=self.timestep, name="panda")

    def _before_substep(self) -> None:
        self.data.ctrl[self._arm_act] += self._ctrl_step

    def _ik(self, target_pos: np.ndarray, q0: np.ndarray) -> np.ndarray:
        """Joint angles putting the tcp at ``target_pos`` with orientation ``R_DOWN`` (DLS IK)."""
        return self._kinematics.ik(target_pos, R_DOWN, q0)

    # ----------------------------------------------------------------- observations
    def ee_pos(self) -> np.ndarray:
        """Measured tcp position (m, world frame)."""
        return self.data.site_xpos[self._tcp].copy()

    def gripper_width(self) -> float:
        """Finger opening (m, sum of both fingers)."""
        return float(self.data.qpos[self._finger_qadr].sum())

    def _object_state(self) -> dict[str, np.ndarray]:
        """Task-specific entries of :meth:`task_state`."""
        return {}

    def task_state(self) -> dict[str, np.ndarray]:
        """Privileged state: ``ee_pos`` (3,), ``gripper_width`` (), ``qpos`` (7,), plus the task keys."""
        state = {
            "ee_pos": self.ee_pos(),
            "gripper_width": np.asarray(self.gripper_width()),
            "qpos": self.data.qpos[self._arm_qadr].copy(),
            "ee_target": self._ee_target.copy(),
        }
        state.update(self._object_state())
        return state

    def _state_obs(self) -> np.ndarray:
        return arm_common.proprio(
            self.ee_pos(), self.gripper_width(), self.data.qpos[self._arm_qadr]
        )

    def _env_state_obs(self) -> np.ndarray | None:
        state = self._object_state()
        values = np.concatenate([np.atleast_1d(state[k]) for k in self._env_state_keys()])
        return arm_common.pad_slots(values.astype(np.float32), self.cfg.env_state_slots)

    def _env_state_keys(self) -> tuple[str, ...]:
        """task_state keys concatenated (in order) into ``observation.environment_state``."""
        raise NotImplementedError


def reachable(target: np.ndarray) -> np.ndarray:
    """``target`` (tcp, m) pulled back so the flange stays within REACH_RADIUS of the shoulder."""
    flange = target + [0.0, 0.0, FLANGE_ABOVE_TCP]
    offset = flange - SHOULDER
    dist = float(np.linalg.norm(offset))
    if dist <= REACH_RADIUS:
        return target
    return SHOULDER + offset * (REACH_RADIUS / dist) - [0.0, 0.0, FLANGE_ABOVE_TCP]
