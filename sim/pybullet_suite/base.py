"""Shared PyBullet scaffolding for the Panda arm tasks: scene, controller, cameras, randomisation.

The PyBullet backend implements the same task contract as the MuJoCo suite
(:class:`sim.mujoco_suite.base.MujocoTaskEnv`): the feature spec, initial-state ranges,
success flags and reward terms all come from :mod:`sim.arm_common`, so a dataset, policy or
scripted expert moves between backends unchanged. A task subclasses :class:`PybulletArmEnv`
and fills in, in this order (STYLE.md habit 4): scene (:meth:`_build_task_scene`), reset
(:meth:`_reset_objects`), observations (:meth:`_object_state`, :meth:`_env_state_keys`),
:meth:`evaluate` returning named flags including ``success``, and reward as named terms
(:meth:`_reward_terms`) times ``reward_weights``.

Every env owns a private physics server in DIRECT mode (no GUI, no shared memory), so any
number of envs coexist in one process. ``pybullet`` itself is imported in ``__init__`` only,
which keeps ``import sim`` free of the simulator.

Frames follow :mod:`sim.arm_common`: world origin at the robot base, +x forward, +z up, table
top at ``TABLE_Z``. Units: metres, radians, seconds, kilograms, newtons.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from robot_learning.envs import TaskConfig, TaskEnv
from sim import arm_common
from sim.pybullet_suite.scene import (
    ARM_CAMERAS,
    BACKDROP_COLOR,
    FLOOR_COLOR,
    LIGHT_AMBIENT,
    LIGHT_DIFFUSE,
    LIGHT_DIRECTION,
    TABLE_COLOR,
    TABLE_HALF,
    low_poly_panda_urdf,
    silenced_stdout,
)

#: joint indices of panda.urdf (pybullet_data/franka_panda): 7 revolute arm joints
ARM_JOINTS = tuple(range(7))
#: prismatic finger joints; each opens 0..0.04 m, so the gripper width is their sum
FINGER_JOINTS = (9, 10)
#: panda_grasptarget: a fixed frame 0.105 m along the hand's approach axis between the finger
#: pads, 7 mm above the fingertips; MuJoCo's ``tcp`` site is the same point of its own finger
#: model (8 mm above its fingertips).
GRASP_LINK = 11
#: physics rate; 24 substeps per 10 Hz control step
PHYSICS_HZ = 240
#: the gripper points straight down (hand z axis = world -z) with a fixed yaw, as in Q_HOME
EE_DOWN_EULER = (np.pi, 0.0, 0.0)
#: finger motor force (N) per finger -- well above what a 50 g cube needs with friction 1
FINGER_FORCE = 40.0
#: the arm's position-motor gains (pybullet's velocity-level motor: v = kp * err / dt)
ARM_POSITION_GAIN = 0.8
FINGER_POSITION_GAIN = 0.3
#: finger pad friction, as the MuJoCo gripper geoms (objects use 1.0)
FINGER_FRICTION = 1.5
JOINT_NOISE = arm_common.JOINT_NOISE
MAX_LEAD = arm_common.MAX_LEAD


class PybulletArmEnv(TaskEnv):
    """Base of the PyBullet Panda tasks: end-effector delta control over an IK position loop.

    Control (one env step = 1 / ``arm_common.FPS`` s = 24 physics steps at 240 Hz), as in
    MuJoCo's ``MujocoArmEnv``: the action moves an end-effector goal (``arm_common.ee_target``,
    kept within ``MAX_LEAD`` of the measured tcp); pybullet's null-space IK (rest pose
    ``Q_HOME``) turns it into joint targets with the gripper pointing down at a fixed yaw; the
    joint position motors get targets ramped linearly over the substeps. ``action[3]`` maps
    linearly to the finger opening, -1 fully open (0.08 m) .. +1 closed (squeezing).

    Subclasses set ``env_state_names`` and ``task_description`` and implement
    :meth:`_build_task_scene`, :meth:`_reset_objects`, :meth:`_object_state`,
    :meth:`_env_state_keys`, :meth:`evaluate` and :meth:`_reward_terms`.
    """

    #: metres of end-effector target motion per action unit (read by the robot safety layer)
    action_scale = arm_common.ACTION_SCALE
    fps: int = arm_common.FPS
    robot_type = arm_common.ROBOT_TYPE
    #: default episode limit in control steps
    default_max_episode_steps: int = 100
    #: cameras rendered in pixel mode when ``cfg.cameras`` is None
    default_cameras: tuple[str, ...] = arm_common.CAMERAS
    #: names of ``observation.environment_state`` elements (state mode)
    env_state_names: tuple[str, ...] = ()
    #: weights of the dense reward terms returned by :meth:`_reward_terms` (missing -> 1.0)
    reward_weights: dict[str, float] = {}
    #: natural-language instruction (the same string as the MuJoCo task, datasets store it)
    task_description: str = ""

    def __init__(self, cfg: TaskConfig, render_size: int = 256) -> None:
        with silenced_stdout(fds=(1, 2)):  # importing pybullet prints its build time to stderr
            import pybullet
            import pybullet_data
        from pybullet_utils.bullet_client import BulletClient

        self.cfg = cfg
        self._pb = pybullet
        self.max_episode_steps = cfg.max_episode_steps or self.default_max_episode_steps
        self.cameras = tuple(cfg.cameras) if cfg.cameras is not None else self.default_cameras
        unknown = [c for c in self.cameras if c not in ARM_CAMERAS]
        if unknown:
            raise ValueError(
                f"Task {cfg.name!r} has no cameras {unknown}; it has {list(ARM_CAMERAS)}"
            )
        self.render_size = render_size
        self.n_substeps = max(1, round(PHYSICS_HZ / self.fps))
        #: dynamic task objects (body ids): randomisation scales their friction and mass, and
        #: reset clears their contact cache
        self.randomized_bodies: list[int] = []
        with silenced_stdout():  # the C layer prints "argv[0]=" on every connect
            self.client = BulletClient(connection_mode=pybullet.DIRECT)
        self._build_world(Path(pybullet_data.getDataPath()))
        self._build_task_scene()
        self._nominal_dynamics = {
            b: self.client.getDynamicsInfo(b, -1) for b in self.randomized_bodies
        }
        # in-memory snapshot of the built world; every reset starts from it
        self._initial_state = self.client.saveState()
        self._camera_offsets = {c: np.zeros(3) for c in ARM_CAMERAS}
        self._light_direction, self._light_diffuse = LIGHT_DIRECTION.copy(), LIGHT_DIFFUSE
        self._ee_target = arm_common.EE_HOME.copy()
        self._q_start = self._q_target = self.q_home.copy()
        self._step_count = 0
        self.features = arm_common.arm_features(
            cfg.obs, self.env_state_names, self.cameras, cfg.image_size, cfg.env_state_slots
        )
        self._init_spaces()

    # ----------------------------------------------------------------- scene
    def _build_world(self, data_path: Path) -> None:
        """Physics settings, table, floor and robot; the home pose is solved once by IK."""
        c, pb = self.client, self._pb
        c.setPhysicsEngineParameter(
            fixedTimeStep=1.0 / PHYSICS_HZ, numSolverIterations=100, deterministicOverlappingPairs=1
        )
        c.setGravity(0.0, 0.0, -9.81)
        # table: a box whose top face is the plane z = TABLE_Z, under the robot and workspace
        self.table = c.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=c.createCollisionShape(pb.GEOM_BOX, halfExtents=TABLE_HALF),
            baseVisualShapeIndex=c.createVisualShape(
                pb.GEOM_BOX, halfExtents=TABLE_HALF, rgbaColor=TABLE_COLOR
            ),
            basePosition=(0.35, 0.0, arm_common.TABLE_Z - TABLE_HALF[2]),
        )
        # visual-only floor 0.75 m below the table top and two backdrop walls behind the robot
        # (TinyRenderer clears to white), so backgrounds resemble MuJoCo's floor and skybox
        for half, pos, rgba in (
            ((3.0, 3.0, 0.01), (0.0, 0.0, -0.76), FLOOR_COLOR),
            ((0.01, 3.0, 2.0), (-2.0, 0.0, 0.0), BACKDROP_COLOR),
            ((3.0, 0.01, 2.0), (0.0, -2.5, 0.0), BACKDROP_COLOR),
        ):
            shape = c.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=rgba)
            c.createMultiBody(
                0.0, -1, shape, basePosition=np.add(pos, (0, 0, arm_common.TABLE_Z)).tolist()
            )
        with tempfile.TemporaryDirectory() as tmp:
            # meshes are read during loadURDF, so the temporary URDF may go right after
            self.robot = c.loadURDF(
                low_poly_panda_urdf(Path(tmp), data_path),
                basePosition=(0.0, 0.0, arm_common.TABLE_Z),
                useFixedBase=True,
            )
        self._ee_down = c.getQuaternionFromEuler(EE_DOWN_EULER)
        infos = [c.getJointInfo(self.robot, j) for j in range(c.getNumJoints(self.robot))]
        movable = [j for j, info in enumerate(infos) if info[2] != pb.JOINT_FIXED]
        # IK runs over all movable joints (7 arm + 2 fingers); its null space pulls to Q_HOME
        self._ik_lower = [infos[j][8] for j in movable]
        self._ik_upper = [infos[j][9] for j in movable]
        self._ik_range = [hi - lo for lo, hi in zip(self._ik_lower, self._ik_upper, strict=True)]
        self._ik_rest = [*arm_common.Q_HOME, 0.04, 0.04]
        self._arm_forces = [infos[j][10] for j in ARM_JOINTS]  # URDF effort limits (N m)
        for j in range(-1, c.getNumJoints(self.robot)):
            # pybullet's default link damping (0.04) would add drag the MuJoCo arm does not have
            c.changeDynamics(self.robot, j, linearDamping=0.0, angularDamping=0.0)
        for j in FINGER_JOINTS:
            c.changeDynamics(self.robot, j, lateralFriction=FINGER_FRICTION, spinningFriction=0.001)
        for j, q in zip(ARM_JOINTS, arm_common.Q_HOME, strict=True):
            c.resetJointState(self.robot, j, float(q))
        self.q_home = self._solve_ik(arm_common.EE_HOME)

    # ----------------------------------------------------------------- subclass hooks
    def _build_task_scene(self) -> None:
        """Create the task's objects (append dynamic ones to ``randomized_bodies``)."""
        raise NotImplementedError

    def _reset_objects(self, rng: np.random.Generator) -> None:
        """Place the task's objects (randomised when cfg.randomization.object_pose)."""
        raise NotImplementedError

    def _object_state(self) -> dict[str, np.ndarray]:
        """Task-specific entries of :meth:`task_state`."""
        raise NotImplementedError

    def _env_state_keys(self) -> tuple[str, ...]:
        """task_state keys concatenated (in order) into ``observation.environment_state``."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, bool]:
        """Named task flags; must include ``success``."""
        raise NotImplementedError

    def _reward_terms(self, flags: dict[str, bool]) -> dict[str, float]:
        """Dense reward terms (each weighted by ``reward_weights``)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """New episode: restore the built world, randomise, home the arm, place the objects.

        Random draws happen in MuJoCo's order (randomisation hooks, joint noise, objects), so
        one seed gives the same object placement on both backends.
        """
        super().reset(seed=seed)
        self._clear_contacts()
        self.client.restoreState(stateId=self._initial_state)
        self._randomize(self.np_random)
        q = self.q_home.copy()
        if self.cfg.randomization.object_pose:
            q += self.np_random.uniform(-JOINT_NOISE, JOINT_NOISE, size=7)
        self._set_robot(q, finger=arm_common.GRIPPER_MAX_WIDTH / 2)
        self._reset_objects(self.np_random)
        self._ee_target = self.ee_pos()
        self._step_count = 0
        return self._get_obs(), self._reset_info()

    def step(self, action):
        """Advance one control step (``1 / fps`` s); same validation and info keys as MuJoCo."""
        action = self._checked_action(action)
        self._apply_action(action)
        for i in range(self.n_substeps):
            # joint targets ramp linearly over the control period: no velocity spikes at 10 Hz
            alpha = (i + 1) / self.n_substeps
            self._command_arm((1.0 - alpha) * self._q_start + alpha * self._q_target)
            self.client.stepSimulation()
        return self._step_result()

    def render(self) -> np.ndarray:
        """RGB frame (render_size x render_size) from the first camera, for videos."""
        return self.render_camera(self.cameras[0], self.render_size)

    def close(self) -> None:
        """Disconnect this env's physics server (idempotent)."""
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            # the server may already be gone (e.g. at interpreter shutdown)
            with contextlib.suppress(self._pb.error):
                client.disconnect()

    # ----------------------------------------------------------------- robot state
    def ee_pos(self) -> np.ndarray:
        """Measured tcp: the grasp centre between the fingertip pads (m, world frame)."""
        state = self.client.getLinkState(self.robot, GRASP_LINK, computeForwardKinematics=True)
        return np.asarray(state[4], dtype=np.float64)

    def gripper_width(self) -> float:
        """Finger opening (m, sum of both fingers)."""
        return float(sum(s[0] for s in self.client.getJointStates(self.robot, FINGER_JOINTS)))

    def qpos(self) -> np.ndarray:
        """The 7 arm joint angles (rad)."""
        return np.array([s[0] for s in self.client.getJointStates(self.robot, ARM_JOINTS)])

    def task_state(self) -> dict[str, np.ndarray]:
        """Privileged state: ``ee_pos`` (3,), ``gripper_width`` (), ``qpos`` (7,), ``ee_target``
        (3,), plus the task keys -- the same keys and shapes as the MuJoCo tasks."""
        return {
            "ee_pos": self.ee_pos(),
            "gripper_width": np.asarray(self.gripper_width()),
            "qpos": self.qpos(),
            "ee_target": self._ee_target.copy(),
            **self._object_state(),
        }

    # ----------------------------------------------------------------- control
    def _solve_ik(self, ee_pos: np.ndarray) -> np.ndarray:
        """Arm joint angles (7,) putting the tcp at ``ee_pos`` with the gripper pointing down.

        pybullet iterates from the current joint state. (Its ``currentPositions`` seed is not
        used: with it, pybullet 3.2.7 returned solutions a constant ~5 cm off in z.)
        """
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

    def _set_robot(self, q: np.ndarray, finger: float) -> None:
        """Teleport the arm to ``q`` with both fingers at ``finger`` (m), motors holding there."""
        for j, qj in zip(ARM_JOINTS, q, strict=True):
            self.client.resetJointState(self.robot, j, float(qj), 0.0)
        for j in FINGER_JOINTS:
            self.client.resetJointState(self.robot, j, finger, 0.0)
        self._q_start, self._q_target = q.copy(), q.copy()
        self._command_arm(q)
        self._command_gripper(2 * finger)

    def _apply_action(self, action: np.ndarray) -> None:
        """Move the ee goal by the delta action, solve IK, command the gripper opening."""
        ee = self.ee_pos()
        target = arm_common.ee_target(self._ee_target, action)
        self._ee_target = ee + np.clip(target - ee, -MAX_LEAD, MAX_LEAD)
        self._q_start = self._q_target
        self._q_target = self._solve_ik(self._ee_target)
        # -1 (open) .. +1 (closed) maps linearly to the opening, as in MuJoCo
        self._command_gripper(arm_common.GRIPPER_MAX_WIDTH * (1.0 - float(action[3])) / 2.0)

    def _command_arm(self, q: np.ndarray) -> None:
        self._command(ARM_JOINTS, [float(v) for v in q], self._arm_forces, ARM_POSITION_GAIN)

    def _command_gripper(self, width: float) -> None:
        self._command(FINGER_JOINTS, [width / 2.0] * 2, [FINGER_FORCE] * 2, FINGER_POSITION_GAIN)

    def _command(self, joints, targets: list[float], forces: list[float], gain: float) -> None:
        """Position-motor targets (rad or m) with force limits (N m or N) for ``joints``."""
        self.client.setJointMotorControlArray(
            self.robot,
            joints,
            self._pb.POSITION_CONTROL,
            targetPositions=targets,
            forces=forces,
            positionGains=[gain] * len(joints),
        )

    # ----------------------------------------------------------------- observations
    def _get_obs(self) -> dict[str, np.ndarray]:
        proprio = arm_common.proprio(self.ee_pos(), self.gripper_width(), self.qpos())
        obs = {"observation.state": proprio}
        if self.cfg.obs == "state":
            state = self._object_state()
            env_state = [np.atleast_1d(state[k]) for k in self._env_state_keys()]
            obs["observation.environment_state"] = arm_common.pad_slots(
                np.concatenate(env_state).astype(np.float32), self.cfg.env_state_slots
            )
        else:
            for cam in self.cameras:
                obs[f"observation.images.{cam}"] = self.render_camera(cam, self.cfg.image_size)
        return obs

    def _camera_view(self, name: str) -> list[float]:
        """View matrix of camera ``name`` in its current (possibly jittered) pose."""
        spec = ARM_CAMERAS[name]
        eye = np.asarray(spec.eye) + self._camera_offsets[name]
        target, up = np.asarray(spec.target), np.asarray(spec.up)
        if spec.link is not None:  # link frame -> world frame
            state = self.client.getLinkState(self.robot, spec.link, computeForwardKinematics=True)
            pos = np.asarray(state[4])
            rot = np.asarray(self.client.getMatrixFromQuaternion(state[5])).reshape(3, 3)
            eye, target, up = pos + rot @ eye, pos + rot @ target, rot @ up
        return self.client.computeViewMatrix(eye.tolist(), target.tolist(), up.tolist())

    def render_camera(self, camera: str, size: int) -> np.ndarray:
        """Render ``camera`` at ``size`` x ``size`` with TinyRenderer (CPU) as uint8 HWC."""
        fov = ARM_CAMERAS[camera].fov
        proj = self.client.computeProjectionMatrixFOV(
            fov=fov, aspect=1.0, nearVal=0.01, farVal=10.0
        )
        _, _, rgba, _, _ = self.client.getCameraImage(
            size,
            size,
            viewMatrix=self._camera_view(camera),
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

        Same hooks, ranges and number of random draws as the MuJoCo base class (2 cameras x 3,
        2 lighting values), so the draws that follow stay aligned across backends.
        """
        r, c = self.cfg.randomization, self.client
        for body, (mass, friction, inertia, *_) in self._nominal_dynamics.items():
            c.changeDynamics(
                body, -1, mass=mass, lateralFriction=friction, localInertiaDiagonal=inertia
            )
            if r.friction is not None:
                c.changeDynamics(body, -1, lateralFriction=friction * rng.uniform(*r.friction))
            if r.mass is not None:
                scale = rng.uniform(*r.mass)
                c.changeDynamics(
                    body, -1, mass=mass * scale, localInertiaDiagonal=[v * scale for v in inertia]
                )
        offsets = np.zeros((len(ARM_CAMERAS), 3))
        if r.camera_pose is not None:
            offsets = rng.uniform(-r.camera_pose, r.camera_pose, size=offsets.shape)
        self._camera_offsets = dict(zip(ARM_CAMERAS, offsets, strict=True))
        self._light_direction, self._light_diffuse = LIGHT_DIRECTION.copy(), LIGHT_DIFFUSE
        if r.lighting is not None:
            d_intensity, d_angle = rng.uniform(-r.lighting, r.lighting, size=2)
            self._light_diffuse = float(np.clip(LIGHT_DIFFUSE + d_intensity, 0.0, 1.0))
            # swing the light about the vertical by up to lighting * 90 degrees
            angle = d_angle * np.pi / 2
            cos, sin = np.cos(angle), np.sin(angle)
            self._light_direction = (
                np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]) @ LIGHT_DIRECTION
            )

    def _clear_contacts(self) -> None:
        """Drop the contact cache of the task objects, so an episode replays bit-exactly.

        restoreState() brings back poses and velocities, but the persistent contact manifolds
        (warm-start impulses) of the previous episode survived it in practice (replays drifted by
        ~1e-6 m); moving every object out of reach and running collision detection makes the
        broadphase delete those pairs.
        """
        for i, body in enumerate(self.randomized_bodies):
            self.client.resetBasePositionAndOrientation(body, (0.0, 0.0, -10.0 - i), (0, 0, 0, 1))
        if self.randomized_bodies:
            self.client.performCollisionDetection()
