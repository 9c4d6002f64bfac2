"""Backend-independent definition of the Panda arm tasks (reach, lift, peg_insert).

Both the MuJoCo and the PyBullet backends import these constants and functions, so a task
has one feature spec, one set of initial-state ranges and one success/reward definition no
matter which simulator runs it. Frames: world origin at the robot base, +x forward, +z up,
table top at ``TABLE_Z``. Units: metres, radians, seconds.
"""

from __future__ import annotations

import numpy as np

from robot_learning.features import Feature, FeatureSpec
from robot_learning.language import Instructions

#: control rate of every arm task (Hz)
FPS = 10
#: metres of end-effector travel per control step for an action component of 1.0
ACTION_SCALE = 0.03
#: end-effector targets are clipped to this box (metres, world frame)
WORKSPACE_LOW = np.array([0.25, -0.35, 0.005])
WORKSPACE_HIGH = np.array([0.75, 0.35, 0.55])
#: table top height (metres)
TABLE_Z = 0.0
#: Panda finger opening range (metres, sum of both fingers)
GRIPPER_MAX_WIDTH = 0.08
#: end-effector home position (gripper pointing down)
EE_HOME = np.array([0.45, 0.0, 0.30])
#: Panda joint configuration that puts the end effector at EE_HOME pointing down (fingers along
#: world y); solved by IK for a tcp 0.105 m below the hand frame (panda.urdf's panda_grasptarget,
#: between the fingertip pads); also the nullspace rest posture of the IK controllers
Q_HOME = np.array([0.0, -0.2614, 0.0, -2.4291, 0.0, 2.1676, 0.7854])
#: default cameras of the arm tasks in pixel mode
CAMERAS = ("front", "wrist")
#: front camera (world frame): beyond the table to the robot's left, looking back at the workspace
FRONT_CAMERA_POS = (1.35, 0.62, 0.85)
FRONT_CAMERA_TARGET = (0.36, 0.0, 0.17)
FRONT_CAMERA_FOVY = 45.0
#: wrist camera in the hand frame (z = approach axis): beside the hand, looking along the
#: fingers so the fingertips and what lies between them stay in view
WRIST_CAMERA_POS = (0.07, 0.0, 0.02)
WRIST_CAMERA_TARGET = (0.0, 0.0, 0.20)
WRIST_CAMERA_FOVY = 75.0
#: uniform joint noise (rad) added to Q_HOME at reset when object_pose randomisation is on
JOINT_NOISE = 0.03
#: how far (m, per axis) the end-effector target may run ahead of the measured tcp, so blocked
#: motion (table, cube) cannot wind up an ever larger servo force
MAX_LEAD = 0.05
#: robot_type recorded in datasets
ROBOT_TYPE = "franka_panda"

ACTION_NAMES = ("dx", "dy", "dz", "gripper")  # gripper: -1 open, +1 close
STATE_NAMES = ("ee_x", "ee_y", "ee_z", "gripper_width") + tuple(f"joint{i}" for i in range(1, 8))

# --------------------------------------------------------------------------- observation bounds
#: Franka Panda joint position limits (rad, datasheet), one row (low, high) per joint
PANDA_JOINT_LIMITS = np.array(
    [
        [-2.8973, 2.8973],
        [-1.7628, 1.7628],
        [-2.8973, 2.8973],
        [-3.0718, -0.0698],
        [-2.8973, 2.8973],
        [-0.0175, 3.7525],
        [-2.8973, 2.8973],
    ]
)
#: joint readings may exceed the datasheet limits by this much (rad): pybullet_data's panda.urdf
#: limits are 0.07 rad wider and simulated limits are soft; more than that is a sensor fault
JOINT_LIMIT_MARGIN = 0.1
#: the measured tcp may leave the target workspace box by this much (m): servo lag, contact
OBS_WORKSPACE_MARGIN = 0.1
#: table top extents (m, world frame) of both backends' scenes: x, y of the box the objects rest on
TABLE_LOW = np.array([-0.2, -0.6])
TABLE_HIGH = np.array([0.9, 0.6])
#: objects may be seen this far beyond the table edge / above the workspace (m) before they
#: count as lost (fallen off the table, thrown)
OBJECT_MARGIN = 0.05
#: gripper width reading slack (m) beyond 0 .. GRIPPER_MAX_WIDTH (soft finger contacts)
GRIPPER_MARGIN = 0.005


def _axis_bounds(axis: int, margin: float) -> tuple[float, float]:
    return float(WORKSPACE_LOW[axis] - margin), float(WORKSPACE_HIGH[axis] + margin)


def _object_xyz_bounds(prefix: str) -> dict[str, tuple[float, float]]:
    """An object on or above the table: table extents and workspace height, plus OBJECT_MARGIN."""
    top = float(WORKSPACE_HIGH[2] + OBS_WORKSPACE_MARGIN + OBJECT_MARGIN)
    return {
        f"{prefix}_x": (float(TABLE_LOW[0] - OBJECT_MARGIN), float(TABLE_HIGH[0] + OBJECT_MARGIN)),
        f"{prefix}_y": (float(TABLE_LOW[1] - OBJECT_MARGIN), float(TABLE_HIGH[1] + OBJECT_MARGIN)),
        f"{prefix}_z": (TABLE_Z - OBJECT_MARGIN, top),
    }


#: most generic environment-state slots an arm task can be laid out in (task.env_state_slots)
MAX_SLOTS = 8


def _observation_element_bounds() -> dict[str, tuple[float, float]]:
    """Physical range (low, high) of every arm-task observation element, by element name."""
    out = {f"ee_{a}": _axis_bounds(i, OBS_WORKSPACE_MARGIN) for i, a in enumerate("xyz")}
    out["gripper_width"] = (-GRIPPER_MARGIN, GRIPPER_MAX_WIDTH + GRIPPER_MARGIN)
    for i, (lo, hi) in enumerate(PANDA_JOINT_LIMITS, start=1):
        out[f"joint{i}"] = (float(lo - JOINT_LIMIT_MARGIN), float(hi + JOINT_LIMIT_MARGIN))
    # reach: the target is placed exactly inside its sampling box and never moves
    for i, a in enumerate("xyz"):
        lo, hi = REACH_TARGET_LOW[i], REACH_TARGET_HIGH[i]
        out[f"target_{a}"] = (float(lo - OBJECT_MARGIN), float(hi + OBJECT_MARGIN))
    out.update(_object_xyz_bounds("cube"))  # lift: the cube is pushed, carried, dropped
    out.update(_object_xyz_bounds("red"))  # lift_color: both cubes, as lift's
    out.update(_object_xyz_bounds("blue"))
    out.update(_object_xyz_bounds("peg"))  # peg_insert: the peg's tip (held, or dropped)
    # peg_insert: the block is placed in its sampling box, its opening HOLE_DEPTH above the table
    for i, a in enumerate("xy"):
        lo, hi = PEG_HOLE_LOW[i], PEG_HOLE_HIGH[i]
        out[f"hole_{a}"] = (float(lo - OBJECT_MARGIN), float(hi + OBJECT_MARGIN))
    out["hole_z"] = (TABLE_Z + HOLE_DEPTH - 0.01, TABLE_Z + HOLE_DEPTH + 0.01)
    # generic slots (task.env_state_slots): any object's range on each axis, and 0 (padding)
    for a in "xyz":
        values = [b for n, b in out.items() if n.endswith(f"_{a}") and not n.startswith("ee_")]
        low = min(0.0, *(lo for lo, _ in values))
        high = max(0.0, *(hi for _, hi in values))
        out.update({f"slot{i}_{a}": (low, high) for i in range(MAX_SLOTS)})
    return out


def observation_bounds(names: tuple[str, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(low, high) of the arm-task observation elements ``names`` (see OBSERVATION_BOUNDS)."""
    missing = [n for n in names if n not in OBSERVATION_BOUNDS]
    if missing:
        raise KeyError(
            f"No physical bounds for observation elements {missing}; add them to "
            "sim.arm_common.OBSERVATION_BOUNDS (every task observation must be bounded)"
        )
    return tuple(OBSERVATION_BOUNDS[n][0] for n in names), tuple(
        OBSERVATION_BOUNDS[n][1] for n in names
    )


def slot_names(env_state_names: tuple[str, ...], slots: int | None) -> tuple[str, ...]:
    """Names of ``observation.environment_state``: the task's own, or ``slots`` generic xyz slots.

    Every arm-task environment state is a sequence of object positions (``<object>_x/y/z``), so
    tasks laid out in the same number of slots share one feature spec (multi-task datasets).
    """
    if slots is None:
        return env_state_names
    if slots > MAX_SLOTS:
        raise ValueError(f"task.env_state_slots={slots} is more than {MAX_SLOTS}; use fewer")
    if len(env_state_names) % 3 or len(env_state_names) > 3 * slots:
        raise ValueError(
            f"task.env_state_slots={slots} cannot hold this task's environment state "
            f"{list(env_state_names)}: use env_state_slots >= {-(-len(env_state_names) // 3)}"
        )
    return tuple(f"slot{i}_{a}" for i in range(slots) for a in "xyz")


def pad_slots(env_state: np.ndarray, slots: int | None) -> np.ndarray:
    """``env_state`` zero-padded to ``slots`` xyz slots (unchanged when ``slots`` is None)."""
    if slots is None:
        return env_state
    return np.concatenate([env_state, np.zeros(3 * slots - len(env_state), env_state.dtype)])


def arm_features(
    obs_mode: str,
    env_state_names: tuple[str, ...],
    cameras: tuple[str, ...],
    image_size: int,
    slots: int | None = None,
) -> FeatureSpec:
    """Feature spec shared by every arm task and backend.

    ``observation.state`` (11): end-effector xyz, gripper width, 7 joint angles.
    ``observation.environment_state`` (state mode): the task's object quantities, or ``slots``
    generic xyz slots (:func:`slot_names`; zeros after the task's objects).
    Both carry physical bounds per element (:data:`OBSERVATION_BOUNDS`).
    ``observation.images.<cam>`` (pixel mode): uint8 (image_size, image_size, 3).
    ``action`` (4): end-effector delta xyz in [-1, 1] (x ACTION_SCALE metres) + gripper command.
    """
    low, high = observation_bounds(STATE_NAMES)
    feats: dict[str, Feature] = {
        "observation.state": Feature(
            "float32", (len(STATE_NAMES),), STATE_NAMES, low=low, high=high
        ),
    }
    if obs_mode == "state":
        names = slot_names(env_state_names, slots)
        low, high = observation_bounds(names)
        feats["observation.environment_state"] = Feature(
            "float32", (len(names),), names, low=low, high=high
        )
    else:
        for cam in cameras:
            feats[f"observation.images.{cam}"] = Feature(
                "video", (image_size, image_size, 3), ("height", "width", "channels")
            )
    feats["action"] = Feature(
        "float32", (4,), ACTION_NAMES, low=(-1.0,) * 4, high=(1.0,) * 4, control_mode="ee_delta_pos"
    )
    return FeatureSpec(feats)


def proprio(ee_pos: np.ndarray, gripper_width: float, qpos: np.ndarray) -> np.ndarray:
    """``observation.state`` vector from its parts. The width reads like a gripper's sensor,
    saturating at its declared range: soft finger limits let a fully open simulated gripper
    reach 0.086 m for a step, which would put the observation outside its own bounds."""
    width = np.clip(np.float32(gripper_width), *_WIDTH_RANGE_F32)
    return np.concatenate([ee_pos, [width], qpos[:7]]).astype(np.float32)


def _inside_f32(low: float, high: float) -> tuple[np.float32, np.float32]:
    """The float32 values nearest ``low`` and ``high`` that lie inside ``[low, high]``."""
    lo, hi = np.float32(low), np.float32(high)
    if float(lo) < low:
        lo = np.nextafter(lo, np.float32(np.inf))
    if float(hi) > high:
        hi = np.nextafter(hi, np.float32(-np.inf))
    return lo, hi


_WIDTH_RANGE_F32 = _inside_f32(-GRIPPER_MARGIN, GRIPPER_MAX_WIDTH + GRIPPER_MARGIN)


def ee_target(current_target: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Next end-effector target from a normalised delta action, clipped to the workspace."""
    return np.clip(
        current_target + ACTION_SCALE * np.asarray(action[:3]), WORKSPACE_LOW, WORKSPACE_HIGH
    )


# --------------------------------------------------------------------------- reach
REACH_TARGET_LOW = np.array([0.35, -0.20, 0.10])
REACH_TARGET_HIGH = np.array([0.60, 0.20, 0.40])
REACH_SUCCESS_DIST = 0.02
REACH_ENV_STATE = ("target_x", "target_y", "target_z")
REACH_MAX_STEPS = 50


def reach_evaluate(state: dict[str, np.ndarray]) -> dict[str, bool]:
    """Success when the end effector is within REACH_SUCCESS_DIST of the target."""
    dist = float(np.linalg.norm(state["ee_pos"] - state["target_pos"]))
    return {"success": dist < REACH_SUCCESS_DIST}


def reach_reward_terms(state: dict[str, np.ndarray], flags: dict[str, bool]) -> dict[str, float]:
    """Dense reach reward: tanh-shaped distance term plus a success bonus."""
    dist = float(np.linalg.norm(state["ee_pos"] - state["target_pos"]))
    return {"reach": 1.0 - float(np.tanh(10.0 * dist)), "success": float(flags["success"])}


class ReachTask:
    """Backend-independent half of ``reach``: text, limits, target sampling, success, reward.

    Mixed in before a backend's arm base class, e.g. ``class ReachEnv(ReachTask, MujocoArmEnv)``.
    """

    task_description = "reach the red target"
    instructions = Instructions(
        train=(
            "reach the red target",
            "move the gripper to the red target",
            "put the hand on the red ball",
            "go to the red sphere",
        ),
        heldout=("bring the end effector to the red marker", "touch the red target"),
    )
    default_max_episode_steps = REACH_MAX_STEPS
    env_state_names = REACH_ENV_STATE

    def sample_target(self, rng: np.random.Generator) -> np.ndarray:
        """Target xyz: uniform in the range when object poses are randomised, else its centre."""
        if self.cfg.randomization.object_pose:
            return rng.uniform(REACH_TARGET_LOW, REACH_TARGET_HIGH)
        return (REACH_TARGET_LOW + REACH_TARGET_HIGH) / 2

    def _env_state_keys(self) -> tuple[str, ...]:
        return ("target_pos",)

    def evaluate(self) -> dict[str, bool]:
        """``success``: tcp within ``REACH_SUCCESS_DIST`` of the target."""
        return reach_evaluate(self.task_state())

    def _reward_terms(self, flags: dict[str, bool]) -> dict[str, float]:
        return reach_reward_terms(self.task_state(), flags)


# --------------------------------------------------------------------------- lift
CUBE_HALF = 0.02
CUBE_MASS = 0.05
LIFT_CUBE_LOW = np.array([0.40, -0.15])
LIFT_CUBE_HIGH = np.array([0.60, 0.15])
LIFT_SUCCESS_HEIGHT = 0.10  # cube bottom this far above the table
LIFT_ENV_STATE = ("cube_x", "cube_y", "cube_z")
LIFT_MAX_STEPS = 80


def lift_evaluate(state: dict[str, np.ndarray]) -> dict[str, bool]:
    """Flags: cube grasped (between fingers, gripper closed on it) and lifted high enough."""
    cube, ee = state["cube_pos"], state["ee_pos"]
    near = float(np.linalg.norm(cube - ee)) < 0.03
    grasped = near and float(state["gripper_width"]) < 2 * CUBE_HALF + 0.005
    lifted = float(cube[2]) - CUBE_HALF - TABLE_Z > LIFT_SUCCESS_HEIGHT
    return {"grasped": grasped, "lifted": lifted, "success": lifted and grasped}


def lift_reward_terms(state: dict[str, np.ndarray], flags: dict[str, bool]) -> dict[str, float]:
    """Dense lift reward: reach the cube, grasp it, raise it."""
    dist = float(np.linalg.norm(state["cube_pos"] - state["ee_pos"]))
    height = float(state["cube_pos"][2]) - CUBE_HALF - TABLE_Z
    return {
        "reach": 1.0 - float(np.tanh(10.0 * dist)),
        "grasp": float(flags["grasped"]),
        "lift": float(np.clip(height / LIFT_SUCCESS_HEIGHT, 0.0, 1.0)) * float(flags["grasped"]),
        "success": float(flags["success"]),
    }


class LiftTask:
    """Backend-independent half of ``lift``: text, limits, cube sampling, success, reward.

    The cube starts axis-aligned with the gripper; only its xy position is random.
    """

    task_description = "pick up the cube and lift it"
    instructions = Instructions(
        train=(
            "pick up the cube and lift it",
            "lift the cube",
            "grasp the block and raise it",
            "pick the cube up off the table",
        ),
        heldout=("raise the block into the air", "grab the cube and hold it up"),
    )
    default_max_episode_steps = LIFT_MAX_STEPS
    env_state_names = LIFT_ENV_STATE

    def sample_cube_xy(self, rng: np.random.Generator) -> np.ndarray:
        """Cube xy: uniform in the range when object poses are randomised, else its centre."""
        if self.cfg.randomization.object_pose:
            return rng.uniform(LIFT_CUBE_LOW, LIFT_CUBE_HIGH)
        return (LIFT_CUBE_LOW + LIFT_CUBE_HIGH) / 2

    def _env_state_keys(self) -> tuple[str, ...]:
        return ("cube_pos",)

    def evaluate(self) -> dict[str, bool]:
        """Flags ``grasped``, ``lifted`` and ``success`` (lifted while grasped)."""
        return lift_evaluate(self.task_state())

    def _reward_terms(self, flags: dict[str, bool]) -> dict[str, float]:
        return lift_reward_terms(self.task_state(), flags)


# --------------------------------------------------------------------------- peg_insert
# A square peg starts held in the closed gripper above a block with a square hole (SERL-style
# insertion). ``peg_pos`` is the centre of the peg's bottom face (its tip), ``hole_pos`` the
# centre of the hole's opening on the block's top face; the hole's floor is the table.
PEG_HALF = 0.012  # square peg half-width (2.4 cm peg)
PEG_HALF_LEN = 0.045  # half-length (9 cm peg)
PEG_MASS = 0.05
PEG_GRASP_OFFSET = 0.015  # peg centre this far below the tcp along the approach axis
HOLE_HALF = 0.014  # square hole half-width: 4 mm total clearance (2 mm per side)
HOLE_DEPTH = 0.04  # block height = hole depth
HOLE_WALL = 0.02  # wall thickness around the hole
PEG_HOLE_LOW = np.array([0.46, -0.04])  # hole centre xy range
PEG_HOLE_HIGH = np.array([0.54, 0.04])
PEG_SUCCESS_DEPTH = 0.025  # tip at least this far below the hole opening
PEG_ENV_STATE = ("peg_x", "peg_y", "peg_z", "hole_x", "hole_y", "hole_z")
PEG_MAX_STEPS = 100


def peg_insert_evaluate(state: dict[str, np.ndarray]) -> dict[str, bool]:
    """Flags: tip over the opening (``aligned``), tip below it (``entered``), deep enough (``success``)."""
    peg, hole = state["peg_pos"], state["hole_pos"]
    aligned = float(np.linalg.norm(peg[:2] - hole[:2])) < HOLE_HALF
    depth = float(hole[2] - peg[2])
    entered = aligned and depth > 0.0
    return {
        "aligned": aligned,
        "entered": entered,
        "success": entered and depth >= PEG_SUCCESS_DEPTH,
    }


def peg_insert_reward_terms(
    state: dict[str, np.ndarray], flags: dict[str, bool]
) -> dict[str, float]:
    """Dense insertion reward: approach the opening, centre over it, push the tip down into it."""
    peg, hole = state["peg_pos"], state["hole_pos"]
    xy_dist = float(np.linalg.norm(peg[:2] - hole[:2]))
    depth = float(hole[2] - peg[2])
    return {
        "approach": 1.0 - float(np.tanh(10.0 * float(np.linalg.norm(peg - hole)))),
        "align": 1.0 - float(np.tanh(50.0 * xy_dist)),
        "insert": float(np.clip(depth / PEG_SUCCESS_DEPTH, 0.0, 1.0)) * float(flags["aligned"]),
        "success": float(flags["success"]),
    }


#: physical range (low, high) of every arm-task observation element, by element name: Panda
#: joint limits, gripper width range, tcp workspace box, object ranges on/around the table
OBSERVATION_BOUNDS: dict[str, tuple[float, float]] = _observation_element_bounds()
