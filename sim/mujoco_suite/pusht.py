"""Push-T in MuJoCo: push a T-shaped block onto a fixed goal pose with a round planar agent.

Scored like the Diffusion Policy (Chi et al., RSS 2023) / gym-pusht benchmark: coverage is the
area of the goal T covered by the block divided by the goal's area (shapely polygons), the dense
reward is ``clip(coverage / 0.95, 0, 1)`` and an episode succeeds (and terminates) at coverage
>= 0.95.

Frames and units: metres, radians, seconds. The world frame is DP's pixel frame scaled by
1 mm per pixel: the workspace is the square ``[0, 0.512]^2`` on the floor (z = 0), so every
pose equals DP's pose / 1000 (goal ``(0.256, 0.256, pi/4)``, agent radius 15 mm, T of 30 mm
wide bars). The T's body frame is DP's: origin at the middle of the bar's outer edge, bar along
x, stem along +y. DP draws with y pointing down the screen while the MuJoCo ``top`` camera looks
down with +y up the image, so frames are DP's frames mirrored top-to-bottom (the T is
mirror-symmetric, so scenes stay valid Push-T scenes).

Unlike DP's pymunk scene (no gravity, velocity damping), the block here rests on the floor with
Coulomb friction, so it moves only while pushed (quasi-static pushing), and the agent is a heavy
disc driven by stiff position servos rather than a kinematic body.
"""

from __future__ import annotations

import numpy as np
import shapely

from robot_learning.envs import TaskConfig, register_task
from robot_learning.features import Feature, FeatureSpec
from robot_learning.language import Instructions
from sim.mujoco_suite.base import MujocoTaskEnv, mujoco  # base sets MUJOCO_GL before importing

# ------------------------------------------------------------------------------ geometry
#: side of the square workspace (m); DP's 512 px window at 1 mm per pixel
WORKSPACE_SIZE = 0.512
#: walls' inner faces sit this far inside the workspace edge (DP: segments at 5 px, radius 2 px)
WALL_INSET = 0.007
#: agent disc radius (m)
AGENT_RADIUS = 0.015
#: T bars are T_SCALE wide; the bar is T_LENGTH * T_SCALE long and the T as tall (DP: 30 px, 4)
T_SCALE = 0.03
T_LENGTH = 4
#: block thickness (m); only matters for the floor contact and the rendering
T_HEIGHT = 0.02
#: the two boxes of the T in its body frame: (centre x, centre y, half-width x, half-width y)
T_BOXES = np.array(
    [
        [0.0, T_SCALE / 2, T_LENGTH * T_SCALE / 2, T_SCALE / 2],  # bar
        [0.0, T_SCALE * (1 + T_LENGTH) / 2, T_SCALE / 2, T_SCALE * (T_LENGTH - 1) / 2],  # stem
    ]
)
_BAR_HALF, _STEM_HALF, _TOP = T_LENGTH * T_SCALE / 2, T_SCALE / 2, T_LENGTH * T_SCALE
#: T outline in its body frame, counter-clockwise (x right, y up), 8 vertices
T_OUTLINE = np.array(
    [
        [-_BAR_HALF, 0.0],
        [-_BAR_HALF, T_SCALE],
        [-_STEM_HALF, T_SCALE],
        [-_STEM_HALF, _TOP],
        [_STEM_HALF, _TOP],
        [_STEM_HALF, T_SCALE],
        [_BAR_HALF, T_SCALE],
        [_BAR_HALF, 0.0],
    ]
)[::-1].copy()
#: DP / gym-pusht keypoints: bar corners 0-3 then stem corners 4-7 (see gym-pusht get_keypoints)
T_KEYPOINTS = np.array(
    [
        [-_BAR_HALF, 0.0],
        [_BAR_HALF, 0.0],
        [_BAR_HALF, T_SCALE],
        [-_BAR_HALF, T_SCALE],
        [-_STEM_HALF, T_SCALE],
        [_STEM_HALF, T_SCALE],
        [_STEM_HALF, _TOP],
        [-_STEM_HALF, _TOP],
    ]
)
#: fixed goal pose (x, y, theta) of the T's body frame, DP's (256, 256, pi/4) in metres
GOAL_POSE = np.array([0.256, 0.256, np.pi / 4])
#: coverage at which an episode succeeds (DP's success threshold)
SUCCESS_COVERAGE = 0.95

# ------------------------------------------------------------------------------ dynamics
#: block mass (kg) and friction coefficient with the floor and the agent
BLOCK_MASS = 0.1
BLOCK_FRICTION = 0.5
#: the block stands FOOT_GAP (m) above the floor on 7 spheres of FOOT_RADIUS (m), one per
#: 30 mm square of the T (body frame), for an even pressure distribution
FOOT_GAP = 0.001
FOOT_RADIUS = 0.002
T_FEET = np.array(
    [[x, T_SCALE / 2] for x in (-1.5 * T_SCALE, -0.5 * T_SCALE, 0.5 * T_SCALE, 1.5 * T_SCALE)]
    + [[0.0, T_SCALE * (k + 1.5)] for k in range(T_LENGTH - 1)]
)
#: block z (m) at rest on the soft floor contact (measured: the soft contacts sink ~60 um)
BLOCK_REST_Z = -6.2e-5
#: agent disc mass (kg) and servo gains: critically damped at 20 rad/s, so the agent tracks a
#: target within about 1 mm while pushing the block (friction ~0.5 N) and settles in ~0.25 s
AGENT_MASS = 1.0
AGENT_KP = 400.0  # N/m
AGENT_KV = 40.0  # N s/m

# ------------------------------------------------------------------------------ initial state
#: initial ranges, DP's reset ranges in metres: agent anywhere but near the walls, block centred
AGENT_INIT_LOW, AGENT_INIT_HIGH = 0.05, 0.45
BLOCK_INIT_LOW, BLOCK_INIT_HIGH = 0.10, 0.40
#: reject initial states that already cover the goal this much (not "near the goal")
MAX_INITIAL_COVERAGE = 0.3
#: minimal clearance (m) between the agent disc and the block, and the block and the walls
INIT_CLEARANCE = 0.01
#: fixed initial state without pose randomisation (DP's _setup: agent (256, 400), T (256, 300, 0))
DEFAULT_AGENT_POS = np.array([0.256, 0.4])
DEFAULT_BLOCK_POSE = np.array([0.256, 0.3, 0.0])

#: observation bounds (m) of the agent: its servo targets lie on the board ``[0,
#: WORKSPACE_SIZE]^2`` (it passes through walls, its servo is critically damped), plus a margin
AGENT_OBS_MARGIN = 0.02
#: ... of the T's keypoints: the floor the block rests on (the board plus FLOOR_MARGIN); the
#: walls hold the block inside the board, but pushed corners sink a few mm into them
FLOOR_MARGIN = 0.05

ACTION_NAMES = ("target_x", "target_y")
STATE_NAMES = ("agent_x", "agent_y")
ENV_STATE_NAMES = tuple(f"keypoint{i}_{axis}" for i in range(len(T_KEYPOINTS)) for axis in "xy")
CAMERAS = ("top",)
MAX_EPISODE_STEPS = 300


def rotation(theta: float) -> np.ndarray:
    """2x2 rotation matrix of ``theta`` radians (counter-clockwise)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def transform(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Map (N, 2) points from the T's body frame to the world frame for pose (x, y, theta)."""
    return points @ rotation(pose[2]).T + pose[:2]


def t_polygon(pose: np.ndarray) -> shapely.Polygon:
    """The T's footprint as a shapely polygon in the world frame."""
    return shapely.Polygon(transform(T_OUTLINE, np.asarray(pose, dtype=float)))


def t_keypoints(pose: np.ndarray) -> np.ndarray:
    """The 8 DP keypoints of the T at ``pose``, shape (8, 2), world frame."""
    return transform(T_KEYPOINTS, np.asarray(pose, dtype=float))


_GOAL_POLYGON = t_polygon(GOAL_POSE)


def coverage(pose: np.ndarray) -> float:
    """Fraction of the goal T's area covered by a T at ``pose`` (DP's Push-T score)."""
    goal = _GOAL_POLYGON
    return float(goal.intersection(t_polygon(pose)).area / goal.area)


def _geom(name: str, kind: str, pos, size, rgba: str, extra: str = "") -> str:
    pos_s = " ".join(f"{v:.6g}" for v in pos)
    size_s = " ".join(f"{v:.6g}" for v in size)
    return (
        f'<geom name="{name}" type="{kind}" pos="{pos_s}" size="{size_s}" rgba="{rgba}" {extra}/>'
    )


def _board_feature(names: tuple[str, ...], margin: float) -> Feature:
    """A float32 vector of board positions (m) bounded by the board ``[0, 0.512]`` +/- ``margin``."""
    n = len(names)
    return Feature("float32", (n,), names, low=(-margin,) * n, high=(WORKSPACE_SIZE + margin,) * n)


@register_task("pusht")
class PushTEnv(MujocoTaskEnv):
    """Planar Push-T: a servoed disc pushes a T block onto the fixed goal pose.

    * ``action`` (2,): absolute target (x, y) of the agent in metres, ``planar_pos``, bounded
      by the workspace ``[0, 0.512]^2``.
    * ``observation.state`` (2,): agent (x, y).
    * ``observation.environment_state`` (16,), state mode: the T's 8 DP keypoints (x, y) in the
      world frame (LeRobot's ``pusht_keypoints`` layout): positions comparable with the agent's,
      and free of the angle wrap-around.
    * Both are bounded by the board ``[0, 0.512]^2`` widened by ``AGENT_OBS_MARGIN`` (agent) or
      ``FLOOR_MARGIN`` (keypoints: the floor's extent).
    * ``observation.images.top`` (pixel mode): top-down view of agent, block and goal.
    """

    fps = 10
    default_max_episode_steps = MAX_EPISODE_STEPS
    default_cameras = CAMERAS
    reward_weights = {"coverage": 1.0}
    randomized_bodies = ("block",)
    task_description = "Push the T-shaped block onto the green target T."
    instructions = Instructions(
        train=(
            "Push the T-shaped block onto the green target T.",
            "push the T onto the target",
            "slide the T block over the green T",
        ),
        heldout=("move the tee into the green outline", "align the T-shaped piece with the goal"),
    )

    def __init__(self, cfg: TaskConfig, render_size: int = 256) -> None:
        if cfg.env_state_slots is not None:
            raise ValueError(
                "task.env_state_slots applies to the arm tasks (object positions); pusht's "
                "environment state is a block pose: remove task.env_state_slots"
            )
        super().__init__(cfg, render_size)
        m = self.model
        jnt = {name: m.joint(name).qposadr[0] for name in ("block_x", "block_y", "block_yaw")}
        self._block_qpos = np.array([jnt["block_x"], jnt["block_y"], jnt["block_yaw"]])
        self._block_z_qpos = m.joint("block_z").qposadr[0]
        self._agent_qpos = np.array([m.joint("agent_x").qposadr[0], m.joint("agent_y").qposadr[0]])
        self._agent_ctrl = np.array([m.actuator("agent_x").id, m.actuator("agent_y").id])
        self._coverage = 0.0

    # ----------------------------------------------------------------- scene
    def _build_xml(self) -> str:
        w, inset, h, gap = WORKSPACE_SIZE, WALL_INSET, T_HEIGHT, FOOT_GAP
        mid = w / 2
        # collision classes: contype 1 = things the block's sides touch (walls, agent),
        # contype 2 = the floor, which only the block's feet touch; the agent meets only the block
        # (like DP's kinematic agent it passes through walls). Friction lives on the block's geoms
        # (MuJoCo takes the larger coefficient of a pair) so the friction hook scales every
        # block contact.
        low_mu = 'friction="0.01 0.005 0.0001"'
        t = 0.01  # wall half-thickness (m); inner faces WALL_INSET inside the workspace edge
        walls = [
            _geom(
                f"wall{i}",
                "box",
                (cx, cy, h / 2 + gap),
                (sx, sy, h / 2 + gap),
                "0.75 0.75 0.75 1",
                f'contype="1" conaffinity="0" {low_mu}',
            )
            for i, (cx, cy, sx, sy) in enumerate(
                [
                    (inset - t, mid, t, mid + t),
                    (w - inset + t, mid, t, mid + t),
                    (mid, inset - t, mid + t, t),
                    (mid, w - inset + t, mid + t, t),
                ]
            )
        ]
        # goal T: visual-only thin boxes on the floor (DP's light-green goal)
        goal = []
        rot = rotation(GOAL_POSE[2])
        for i, (cx, cy, hx, hy) in enumerate(T_BOXES):
            gx, gy = rot @ np.array([cx, cy]) + GOAL_POSE[:2]
            goal.append(
                _geom(
                    f"goal{i}",
                    "box",
                    (gx, gy, 0.0005),
                    (hx, hy, 0.0005),
                    "0.56 0.93 0.56 1",
                    f'euler="0 0 {GOAL_POSE[2]:.9g}" contype="0" conaffinity="0" group="1"',
                )
            )
        block_mu = f'friction="{BLOCK_FRICTION} 0.005 0.0001"'
        block_volume = float(np.sum(4 * T_BOXES[:, 2] * T_BOXES[:, 3])) * h
        block = [
            _geom(
                f"block_{part}",
                "box",
                (cx, cy, 0.0),
                (hx, hy, h / 2),
                "0.47 0.53 0.6 1",
                f'{block_mu} contype="0" conaffinity="1" density="{BLOCK_MASS / block_volume:.6g}"',
            )
            for part, (cx, cy, hx, hy) in zip(("bar", "stem"), T_BOXES, strict=True)
        ]
        # feet: the block rests on small spheres at the centres of the 7 squares that make up the
        # T, an even (near-uniform) pressure distribution; box-floor contacts would put the whole
        # weight on the 8 outer corners and make the T much harder to turn than a flat block
        feet = [
            _geom(
                f"block_foot{i}",
                "sphere",
                (fx, fy, -h / 2 - gap + FOOT_RADIUS),
                (FOOT_RADIUS,),
                "0 0 0 0",
                f'{block_mu} contype="0" conaffinity="2" mass="1e-6" group="3"',
            )
            for i, (fx, fy) in enumerate(T_FEET)
        ]
        agent = _geom(
            "agent",
            "cylinder",
            (0, 0, 0),
            (AGENT_RADIUS, h / 2),
            "0.25 0.41 0.88 1",
            f'mass="{AGENT_MASS}" contype="1" conaffinity="0" {low_mu}',
        )
        # a narrow-field camera far above approximates DP's orthographic top-down view
        cam_height = 1.6
        fb = max(640, self.cfg.image_size)  # offscreen framebuffer large enough for any frame
        fovy = 2 * np.degrees(np.arctan((mid + 0.012) / cam_height))
        return f"""
<mujoco model="pusht">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <statistic center="{mid} {mid} 0" extent="0.6"/>
  <visual>
    <global offwidth="{fb}" offheight="{fb}"/>
    <quality shadowsize="0"/>
    <headlight ambient="0.55 0.55 0.55" diffuse="0.45 0.45 0.45" specular="0 0 0"/>
    <map znear="0.5" zfar="5"/>
  </visual>
  <worldbody>
    <geom name="floor" type="plane" pos="{mid} {mid} 0" size="{mid + FLOOR_MARGIN} {mid + FLOOR_MARGIN} 0.01"
          rgba="1 1 1 1" contype="2" conaffinity="0" {low_mu}/>
    {"".join(walls)}
    {"".join(goal)}
    <camera name="top" pos="{mid} {mid} {cam_height}" xyaxes="1 0 0 0 1 0" fovy="{fovy:.6g}"/>
    <body name="block" pos="0 0 {h / 2 + gap}">
      <joint name="block_x" type="slide" axis="1 0 0" damping="0.2"/>
      <joint name="block_y" type="slide" axis="0 1 0" damping="0.2"/>
      <joint name="block_z" type="slide" axis="0 0 1"/>
      <joint name="block_yaw" type="hinge" axis="0 0 1" damping="0.0005"/>
      {"".join(block)}
      {"".join(feet)}
    </body>
    <body name="agent" pos="0 0 {h / 2 + gap}">
      <joint name="agent_x" type="slide" axis="1 0 0" damping="{AGENT_KV}"/>
      <joint name="agent_y" type="slide" axis="0 1 0" damping="{AGENT_KV}"/>
      {agent}
    </body>
  </worldbody>
  <actuator>
    <position name="agent_x" joint="agent_x" kp="{AGENT_KP}" ctrlrange="0 {w}" forcerange="-50 50"/>
    <position name="agent_y" joint="agent_y" kp="{AGENT_KP}" ctrlrange="0 {w}" forcerange="-50 50"/>
  </actuator>
</mujoco>
"""

    def _build_features(self) -> FeatureSpec:
        feats = {"observation.state": _board_feature(STATE_NAMES, AGENT_OBS_MARGIN)}
        if self.cfg.obs == "state":
            feats["observation.environment_state"] = _board_feature(ENV_STATE_NAMES, FLOOR_MARGIN)
        else:
            size = self.cfg.image_size
            for cam in self.cameras:
                feats[f"observation.images.{cam}"] = Feature(
                    "video", (size, size, 3), ("height", "width", "channels")
                )
        feats["action"] = Feature(
            "float32",
            (2,),
            ACTION_NAMES,
            low=(0.0, 0.0),
            high=(WORKSPACE_SIZE,) * 2,
            control_mode="planar_pos",
        )
        return FeatureSpec(feats)

    # ----------------------------------------------------------------- reset and randomisation
    def _reset_task(self, rng: np.random.Generator) -> None:
        if self.cfg.randomization.object_pose:
            agent, block = self._sample_initial_state(rng)
        else:
            agent, block = DEFAULT_AGENT_POS.copy(), DEFAULT_BLOCK_POSE.copy()
        self.set_state(agent, block)

    @staticmethod
    def _sample_initial_state(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """DP's reset ranges, rejecting overlaps, blocks touching a wall and near-goal starts."""
        lo, hi = WALL_INSET + INIT_CLEARANCE, WORKSPACE_SIZE - WALL_INSET - INIT_CLEARANCE
        while True:
            agent = rng.uniform(AGENT_INIT_LOW, AGENT_INIT_HIGH, size=2)
            block = np.array(
                [*rng.uniform(BLOCK_INIT_LOW, BLOCK_INIT_HIGH, size=2), rng.uniform(-np.pi, np.pi)]
            )
            poly = t_polygon(block)
            xmin, ymin, xmax, ymax = poly.bounds
            if min(xmin, ymin) < lo or max(xmax, ymax) > hi:
                continue
            if poly.distance(shapely.Point(agent)) < AGENT_RADIUS + INIT_CLEARANCE:
                continue
            if coverage(block) > MAX_INITIAL_COVERAGE:
                continue
            return agent, block

    def set_state(self, agent_pos: np.ndarray, block_pose: np.ndarray) -> None:
        """Place the agent (x, y) at rest with its servo target on it, and the block (x, y, theta)."""
        d = self.data
        d.qpos[self._agent_qpos] = agent_pos
        d.qvel[:] = 0.0
        d.ctrl[self._agent_ctrl] = agent_pos
        d.qpos[self._block_qpos] = block_pose
        # the floor contact is soft: start at the resting penetration so the block does not settle
        d.qpos[self._block_z_qpos] = BLOCK_REST_Z
        mujoco.mj_forward(self.model, d)

    def _apply_action(self, action: np.ndarray) -> None:
        self.data.ctrl[self._agent_ctrl] = action

    # ----------------------------------------------------------------- observations
    def agent_pos(self) -> np.ndarray:
        """Agent disc centre (x, y), metres."""
        return self.data.qpos[self._agent_qpos].copy()

    def block_pose(self) -> np.ndarray:
        """T body-frame pose (x, y, theta) with theta wrapped to [-pi, pi)."""
        pose = self.data.qpos[self._block_qpos].copy()
        pose[2] = (pose[2] + np.pi) % (2 * np.pi) - np.pi
        return pose

    def _state_obs(self) -> np.ndarray:
        return self.agent_pos()

    def _env_state_obs(self) -> np.ndarray:
        return t_keypoints(self.block_pose()).ravel()

    def task_state(self) -> dict[str, np.ndarray]:
        """``agent_pos`` (2,), ``block_pose`` / ``goal_pose`` (x, y, theta), ``coverage`` ()."""
        pose = self.block_pose()
        return {
            "agent_pos": self.agent_pos(),
            "block_pose": pose,
            "goal_pose": GOAL_POSE.copy(),
            "coverage": np.asarray(coverage(pose)),
        }

    # ----------------------------------------------------------------- evaluate and reward
    def evaluate(self) -> dict[str, bool]:
        """``success``: the block covers at least 95 % of the goal T."""
        self._coverage = coverage(self.block_pose())
        return {"success": self._coverage >= SUCCESS_COVERAGE}

    def _reward_terms(self, flags: dict[str, bool]) -> dict[str, float]:
        # DP's reward: coverage normalised by the success threshold, saturating at 1
        return {"coverage": float(np.clip(self._coverage / SUCCESS_COVERAGE, 0.0, 1.0))}
