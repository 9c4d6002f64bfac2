"""Shared PyBullet scaffolding for the Panda arm tasks: scene, controller, cameras, randomisation.

The PyBullet backend implements the same task contract as the MuJoCo suite
(:class:`sim.mujoco_suite.base.MujocoTaskEnv`): the feature spec, initial-state ranges,
success flags and reward terms all come from :mod:`sim.arm_common`, so a dataset, policy or
scripted expert moves between backends unchanged. A task subclasses :class:`PybulletArmEnv`
and fills in, in this order (STYLE.md habit 4): scene (:meth:`_build_task_scene`), reset and
randomisation (:meth:`_reset_task`), observations (:meth:`_object_state`,
:meth:`_env_state_obs`), :meth:`evaluate` returning named flags including ``success``, and
reward as named terms (:meth:`_reward_terms`) times ``reward_weights``.

Every env owns a private physics server in DIRECT mode (no GUI, no shared memory), so any
number of envs coexist in one process. ``pybullet`` itself is imported in ``__init__`` only,
which keeps ``import sim`` free of the simulator.

Frames follow :mod:`sim.arm_common`: world origin at the robot base, +x forward, +z up, table
top at ``TABLE_Z``. Units: metres, radians, seconds, kilograms, newtons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_learning.envs import TaskConfig, TaskEnv
from robot_learning.features import ACTION, FeatureSpec
from sim import arm_common

#: joint indices of panda.urdf (pybullet_data/franka_panda): 7 revolute arm joints
ARM_JOINTS = tuple(range(7))
#: prismatic finger joints; each opens 0..0.04 m, so the gripper width is their sum
FINGER_JOINTS = (9, 10)
#: panda_hand link (camera mount) and panda_grasptarget, a fixed frame 0.105 m along the hand's
#: approach axis, i.e. the centre between the fingertip pads -- the same point MuJoCo calls ee
HAND_LINK = 8
GRASP_LINK = 11
#: physics rate; 24 substeps per 10 Hz control step
PHYSICS_HZ = 240
#: the gripper points straight down (hand z axis = world -z) with a fixed yaw, as in Q_HOME
EE_DOWN_EULER = (np.pi, 0.0, 0.0)
#: finger motor force (N) per finger -- well above what a 50 g cube needs with friction 1
FINGER_FORCE = 40.0
#: the arm's position-motor gains (pybullet's velocity-level motor: v = kp * err / dt)
ARM_POSITION_GAIN = 0.3
FINGER_POSITION_GAIN = 0.3


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera: fixed in the world, or mounted on a robot link (``link`` set).

    For a world camera ``eye``/``target``/``up`` are world coordinates; for a link camera
    they are in the link frame and move with it.
    """

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]
    fov: float
    """Vertical field of view in degrees."""
    link: int | None = None


#: cameras of the arm tasks, roughly matching the MuJoCo scene: ``front`` faces the robot from
#: beyond the table looking at the workspace; ``wrist`` sits on the hand beside the fingers and
#: looks along the approach axis (straight down at home) so the fingertips stay in view.
ARM_CAMERAS = {
    "front": CameraSpec(eye=(1.30, 0.0, 0.60), target=(0.45, 0.0, 0.08), up=(0.0, 0.0, 1.0), fov=50.0),
    "wrist": CameraSpec(
        eye=(0.07, 0.0, 0.02), target=(0.0, 0.0, 0.20), up=(1.0, 0.0, 0.0), fov=75.0, link=HAND_LINK
    ),
}
#: TinyRenderer lighting (direction points from the scene towards the light)
LIGHT_DIRECTION = np.array([0.6, 0.3, 1.0])
LIGHT_DIFFUSE = 0.6
LIGHT_AMBIENT = 0.45
TABLE_COLOR = (0.55, 0.42, 0.30, 1.0)


class PybulletArmEnv(TaskEnv):
    """Base for the PyBullet Panda tasks: end-effector delta control over an IK position loop."""

    fps: int = arm_common.FPS
    #: default episode limit in control steps
    default_max_episode_steps: int = 100
    #: cameras rendered in pixel mode when ``cfg.cameras`` is None
    default_cameras: tuple[str, ...] = arm_common.CAMERAS
    #: names of ``observation.environment_state`` elements (state mode)
    env_state_names: tuple[str, ...] = ()
    #: weights of the dense reward terms returned by :meth:`_reward_terms` (missing -> 1.0)
    reward_weights: dict[str, float] = {}
    #: natural-language instruction of the task
    task_description: str = ""

    def __init__(self, cfg: TaskConfig, render_size: int = 256) -> None:
        import pybullet
        import pybullet_data
        from pybullet_utils.bullet_client import BulletClient

        self.cfg = cfg
        self._pb = pybullet
        self.client = BulletClient(connection_mode=pybullet.DIRECT)
        self.client.setAdditionalSearchPath(pybullet_data.getDataPath())
        self.max_episode_steps = cfg.max_episode_steps or self.default_max_episode_steps
        self.cameras = tuple(cfg.cameras) if cfg.cameras is not None else self.default_cameras
        unknown = [c for c in self.cameras if c not in ARM_CAMERAS]
        if unknown:
            raise ValueError(f"Task {cfg.name!r} has no cameras {unknown}; it has {sorted(ARM_CAMERAS)}")
        self.render_size = render_size
        self.n_substeps = max(1, round(PHYSICS_HZ / self.fps))
        #: bodies (ids) whose friction and mass the randomisation hooks scale
        self.randomized_bodies: list[int] = []

        self._build_world()
        self._build_task_scene()
        self._nominal_dynamics = {
            b: self.client.getDynamicsInfo(b, -1) for b in self.randomized_bodies
        }
        # Snapshot of the freshly built world (in memory): every reset restores it, so an
        # episode never depends on the solver's warm-start cache left by the previous one.
        self._initial_state = self.client.saveState()
        self._camera_offsets = {c: np.zeros(3) for c in ARM_CAMERAS}
        self._light_direction = LIGHT_DIRECTION.copy()
        self._light_diffuse = LIGHT_DIFFUSE
        self._ee_goal = arm_common.EE_HOME.copy()
        self._step_count = 0
        self.features = self._build_features()
        self._init_spaces()

    # ----------------------------------------------------------------- scene
    def _build_world(self) -> None:
        """Physics settings, table and robot; the home configuration is solved once by IK."""
        c, pb = self.client, self._pb
        c.setPhysicsEngineParameter(
            fixedTimeStep=1.0 / PHYSICS_HZ, numSolverIterations=100, deterministicOverlappingPairs=1
        )
        c.setGravity(0.0, 0.0, -9.81)
        # Table: a box whose top face is the plane z = TABLE_Z, spanning base and workspace.
        half = (0.65, 0.75, 0.025)
        self.table = c.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=c.createCollisionShape(pb.GEOM_BOX, halfExtents=half),
            baseVisualShapeIndex=c.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=TABLE_COLOR),
            basePosition=(0.35, 0.0, arm_common.TABLE_Z - half[2]),
        )
        self.robot = c.loadURDF(
            "franka_panda/panda.urdf", basePosition=(0.0, 0.0, arm_common.TABLE_Z), useFixedBase=True
        )
        self._ee_down = c.getQuaternionFromEuler(EE_DOWN_EULER)
        infos = [c.getJointInfo(self.robot, j) for j in range(c.getNumJoints(self.robot))]
        movable = [j for j, info in enumerate(infos) if info[2] != pb.JOINT_FIXED]
        # IK works over all movable joints (7 arm + 2 fingers); null-space pulls towards Q_HOME.
        self._ik_lower = [infos[j][8] for j in movable]
        self._ik_upper = [infos[j][9] for j in movable]
        self._ik_range = [hi - lo for lo, hi in zip(self._ik_lower, self._ik_upper, strict=True)]
        self._ik_rest = list(arm_common.Q_HOME) + [0.04, 0.04]
        self._arm_forces = [infos[j][10] for j in ARM_JOINTS]  # URDF effort limits (N m)
        for j in range(-1, c.getNumJoints(self.robot)):
            # pybullet's default link damping (0.04) slows the fingers; friction 1 for grasping
            c.changeDynamics(self.robot, j, linearDamping=0.0, angularDamping=0.0)
        for j in FINGER_JOINTS:
            c.changeDynamics(self.robot, j, lateralFriction=1.0, spinningFriction=0.001)
        for j, q in enumerate(arm_common.Q_HOME):
            c.resetJointState(self.robot, j, q)
        self.q_home = self._solve_ik(arm_common.EE_HOME)

    def _build_task_scene(self) -> None:
        """Create the task's objects (and append graspable ones to ``randomized_bodies``)."""
        raise NotImplementedError

    def _build_features(self) -> FeatureSpec:
        return arm_common.arm_features(self.cfg.obs, self.env_state_names, self.cameras, self.cfg.image_size)

    # ----------------------------------------------------------------- subclass hooks
    def _reset_task(self, rng: np.random.Generator) -> None:
        """Place objects for a new episode (randomised when cfg.randomization.object_pose)."""
        raise NotImplementedError

    def _object_state(self) -> dict[str, np.ndarray]:
        """Task-specific privileged quantities merged into :meth:`task_state`."""
        raise NotImplementedError

    def _env_state_obs(self) -> np.ndarray:
        """``observation.environment_state`` in state mode."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, bool]:
        """Named task flags; must include ``success``."""
        raise NotImplementedError

    def _reward_terms(self, flags: dict[str, bool]) -> dict[str, float]:
        """Dense reward terms (each weighted by ``reward_weights``)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Restore the built world, apply randomisation, home the arm, place the task objects."""
        super().reset(seed=seed)
        self.client.restoreState(stateId=self._initial_state)
        self._randomize(self.np_random)
        self._reset_arm()
        self._reset_task(self.np_random)
        self._ee_goal = self._ee_pos()
        self._step_count = 0
        flags = self.evaluate()
        return self._get_obs(), {"is_success": bool(flags["success"]), **{f"flag/{k}": v for k, v in flags.items()}}

    def step(self, action):
        """Advance one control step (``1 / fps`` s); same validation and info keys as MuJoCo."""
        action = np.asarray(action, dtype=np.float32)
        expected = self.features[ACTION].shape
        if action.shape != expected:
            raise ValueError(f"{self.cfg.name}: action must have shape {expected}, got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"{self.cfg.name}: action contains NaN/Inf: {action}")
        action = np.clip(action, self.action_space.low, self.action_space.high)
        self._apply_action(action)
        for _ in range(self.n_substeps):
            self.client.stepSimulation()
        self._step_count += 1
        flags = self.evaluate()
        success = bool(flags["success"])
        terms = self._reward_terms(flags)
        if self.cfg.reward == "sparse":
            reward = float(success)
        else:
            reward = float(sum(self.reward_weights.get(k, 1.0) * v for k, v in terms.items()))
        truncated = self._step_count >= self.max_episode_steps
        info = {
            "is_success": success,
            **{f"flag/{k}": v for k, v in flags.items()},
            **{f"reward/{k}": float(v) for k, v in terms.items()},
        }
        return self._get_obs(), reward, success, truncated and not success, info

    def render(self) -> np.ndarray:
        """RGB frame (render_size x render_size) from the first camera, for videos."""
        return self.render_camera(self.cameras[0], self.render_size)

    def close(self) -> None:
        """Disconnect this env's physics server (idempotent)."""
        client = getattr(self, "client", None)
        if client is not None:
            try:
                client.disconnect()
            except Exception:  # noqa: BLE001 -- already disconnected (e.g. interpreter shutdown)
                pass
            self.client = None

    # ----------------------------------------------------------------- robot
    def task_state(self) -> dict[str, np.ndarray]:
        """Privileged state for scripted experts: ee_pos, gripper_width, qpos + task objects."""
        return {
            "ee_pos": self._ee_pos(),
            "gripper_width": np.float64(self._gripper_width()),
            "qpos": self._qpos(),
            **self._object_state(),
        }

    def _ee_pos(self) -> np.ndarray:
        """Grasp centre between the fingertips (world frame, metres)."""
        state = self.client.getLinkState(self.robot, GRASP_LINK, computeForwardKinematics=True)
        return np.asarray(state[4], dtype=np.float64)

    def _qpos(self) -> np.ndarray:
        return np.array([s[0] for s in self.client.getJointStates(self.robot, ARM_JOINTS)])

    def _gripper_width(self) -> float:
        return float(sum(s[0] for s in self.client.getJointStates(self.robot, FINGER_JOINTS)))

    def _solve_ik(self, ee_pos: np.ndarray) -> np.ndarray:
        """Arm joint angles putting the grasp centre at ``ee_pos`` with the gripper pointing down."""
        q = self.client.calculateInverseKinematics(
            self.robot,
            GRASP_LINK,
            targetPosition=[float(v) for v in ee_pos],
            targetOrientation=self._ee_down,
            lowerLimits=self._ik_lower,
            upperLimits=self._ik_upper,
            jointRanges=self._ik_range,
            restPoses=self._ik_rest,
            maxNumIterations=50,
            residualThreshold=1e-5,
        )
        return np.asarray(q[:7])

    def _reset_arm(self) -> None:
        """Teleport the arm to the home configuration (grasp centre at EE_HOME), gripper open."""
        c = self.client
        for j, q in zip(ARM_JOINTS, self.q_home, strict=True):
            c.resetJointState(self.robot, j, float(q), 0.0)
        half_open = arm_common.GRIPPER_MAX_WIDTH / 2
        for j in FINGER_JOINTS:
            c.resetJointState(self.robot, j, half_open, 0.0)
        self._command_arm(self.q_home)
        self._command_gripper(arm_common.GRIPPER_MAX_WIDTH)

    def _apply_action(self, action: np.ndarray) -> None:
        """Move the end-effector goal by the delta action and command IK + gripper targets.

        The goal accumulates (it is not re-read from the measured pose), like the MuJoCo
        controller, so small steps are not lost to tracking lag; it stays in the workspace box.
        """
        self._ee_goal = arm_common.ee_target(self._ee_goal, action)
        self._command_arm(self._solve_ik(self._ee_goal))
        # gripper command -1 (open) .. +1 (closed) maps linearly to the finger opening
        width = arm_common.GRIPPER_MAX_WIDTH * (1.0 - float(action[3])) / 2.0
        self._command_gripper(width)

    def _command_arm(self, q: np.ndarray) -> None:
        self.client.setJointMotorControlArray(
            self.robot,
            ARM_JOINTS,
            self._pb.POSITION_CONTROL,
            targetPositions=[float(v) for v in q],
            forces=self._arm_forces,
            positionGains=[ARM_POSITION_GAIN] * len(ARM_JOINTS),
        )

    def _command_gripper(self, width: float) -> None:
        self.client.setJointMotorControlArray(
            self.robot,
            FINGER_JOINTS,
            self._pb.POSITION_CONTROL,
            targetPositions=[width / 2.0] * 2,
            forces=[FINGER_FORCE] * 2,
            positionGains=[FINGER_POSITION_GAIN] * 2,
        )

    # ----------------------------------------------------------------- observations
    def _get_obs(self) -> dict[str, np.ndarray]:
        obs = {
            "observation.state": arm_common.proprio(self._ee_pos(), self._gripper_width(), self._qpos())
        }
        if self.cfg.obs == "state":
            obs["observation.environment_state"] = np.asarray(self._env_state_obs(), dtype=np.float32)
        else:
            for cam in self.cameras:
                obs[f"observation.images.{cam}"] = self.render_camera(cam, self.cfg.image_size)
        return obs

    def _camera_view(self, name: str) -> tuple[list[float], float]:
        """View matrix and field of view of camera ``name`` in its current (jittered) pose."""
        spec = ARM_CAMERAS[name]
        eye = np.asarray(spec.eye) + self._camera_offsets[name]
        target, up = np.asarray(spec.target), np.asarray(spec.up)
        if spec.link is not None:
            state = self.client.getLinkState(self.robot, spec.link, computeForwardKinematics=True)
            pos = np.asarray(state[4])
            rot = np.asarray(self.client.getMatrixFromQuaternion(state[5])).reshape(3, 3)
            eye, target, up = pos + rot @ eye, pos + rot @ target, rot @ up
        view = self.client.computeViewMatrix(eye.tolist(), target.tolist(), up.tolist())
        return view, spec.fov

    def render_camera(self, camera: str, size: int) -> np.ndarray:
        """Render ``camera`` at ``size`` x ``size`` with TinyRenderer (CPU) as uint8 HWC."""
        view, fov = self._camera_view(camera)
        proj = self.client.computeProjectionMatrixFOV(fov=fov, aspect=1.0, nearVal=0.01, farVal=4.0)
        _, _, rgba, _, _ = self.client.getCameraImage(
            size,
            size,
            viewMatrix=view,
            projectionMatrix=proj,
            renderer=self._pb.ER_TINY_RENDERER,
            lightDirection=self._light_direction.tolist(),
            lightAmbientCoeff=LIGHT_AMBIENT,
            lightDiffuseCoeff=self._light_diffuse,
            lightSpecularCoeff=0.05,
            shadow=0,
            flags=self._pb.ER_NO_SEGMENTATION_MASK,
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(size, size, 4)[:, :, :3].copy()

    # ----------------------------------------------------------------- randomisation
    def _randomize(self, rng: np.random.Generator) -> None:
        """Domain-randomisation hooks: friction, mass, camera pose, lighting (from nominal values).

        Same hooks and ranges as the MuJoCo base class; the draws are taken before the task's
        object placement, also as in MuJoCo.
        """
        r, c = self.cfg.randomization, self.client
        for body, nominal in self._nominal_dynamics.items():
            mass, friction, inertia = nominal[0], nominal[1], nominal[2]
            c.changeDynamics(body, -1, mass=mass, lateralFriction=friction, localInertiaDiagonal=inertia)
            if r.friction is not None:
                c.changeDynamics(body, -1, lateralFriction=friction * rng.uniform(*r.friction))
            if r.mass is not None:
                scale = rng.uniform(*r.mass)
                c.changeDynamics(
                    body, -1, mass=mass * scale, localInertiaDiagonal=[v * scale for v in inertia]
                )
        for name in ARM_CAMERAS:
            self._camera_offsets[name] = np.zeros(3)
        if r.camera_pose is not None:
            for name in ARM_CAMERAS:
                self._camera_offsets[name] = rng.uniform(-r.camera_pose, r.camera_pose, size=3)
        self._light_direction = LIGHT_DIRECTION.copy()
        self._light_diffuse = LIGHT_DIFFUSE
        if r.lighting is not None:
            self._light_diffuse = float(np.clip(LIGHT_DIFFUSE + rng.uniform(-r.lighting, r.lighting), 0.0, 1.0))
            self._light_direction = LIGHT_DIRECTION + rng.uniform(-r.lighting, r.lighting, size=3)
