"""Peg insertion (MuJoCo): push a held square peg into a tight hole (SERL/HIL-SERL analogue).

The peg starts squeezed between the closed fingers; the block is four box walls around a
square hole (exact box-box contacts) whose floor is the table, at a random xy each episode.
Dimensions, ranges, success and reward come from :mod:`sim.arm_common`.
"""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_task
from robot_learning.language import Instructions
from sim import arm_common as ac
from sim.mujoco_suite.arm_base import MujocoArmEnv
from sim.mujoco_suite.base import mujoco  # base sets MUJOCO_GL before importing mujoco

#: physics steps run at reset so the fingers settle on the peg before the episode starts
_SETTLE_STEPS = 40


@register_task("peg_insert")
class PegInsertEnv(MujocoArmEnv):
    """Insert the held peg at least ``PEG_SUCCESS_DEPTH`` into the hole."""

    task_description = "insert the peg into the hole"
    instructions = Instructions(
        train=(
            "insert the peg into the hole",
            "put the peg in the hole",
            "push the peg down into the block",
        ),
        heldout=("plug the peg into the square hole", "fit the peg into the opening"),
    )
    default_max_episode_steps = ac.PEG_MAX_STEPS
    env_state_names = ac.PEG_ENV_STATE
    randomized_bodies = ("peg",)

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self._peg = self.body_id("peg")
        self._peg_qadr = self.model.jnt_qposadr[self.model.joint("peg").id]
        self._hole_mocap = self.model.body_mocapid[self.body_id("hole")]

    # ----------------------------------------------------------------- scene
    def _objects_xml(self) -> str:
        h, w, half_z = ac.HOLE_HALF, ac.HOLE_WALL, ac.HOLE_DEPTH / 2
        outer = h + w
        # the block is a mocap body (static for physics, movable at reset) whose frame is the
        # hole centre on the table top; walls along x span the full block, walls along y fill in
        walls = "".join(
            f'<geom type="box" size="{sx} {sy} {half_z}" pos="{px} {py} {half_z}" rgba="0.3 0.55 0.35 1"/>'
            for sx, sy, px, py in (
                (outer, w / 2, 0, h + w / 2),
                (outer, w / 2, 0, -(h + w / 2)),
                (w / 2, h, h + w / 2, 0),
                (w / 2, h, -(h + w / 2), 0),
            )
        )
        nominal = (ac.PEG_HOLE_LOW + ac.PEG_HOLE_HIGH) / 2
        return f"""
    <body name="hole" mocap="true" pos="{nominal[0]} {nominal[1]} {ac.TABLE_Z}">
      {walls}
    </body>
    <body name="peg" pos="0.5 0 0.3">
      <freejoint name="peg"/>
      <geom name="peg" type="box" size="{ac.PEG_HALF} {ac.PEG_HALF} {ac.PEG_HALF_LEN}"
            mass="{ac.PEG_MASS}" rgba="0.2 0.35 0.85 1" condim="4"/>
    </body>"""

    # ----------------------------------------------------------------- reset
    def _reset_objects(self, rng: np.random.Generator) -> None:
        if self.cfg.randomization.object_pose:
            xy = rng.uniform(ac.PEG_HOLE_LOW, ac.PEG_HOLE_HIGH)
        else:
            xy = (ac.PEG_HOLE_LOW + ac.PEG_HOLE_HIGH) / 2
        self.data.mocap_pos[self._hole_mocap] = [*xy, ac.TABLE_Z]
        # peg in the hand: axes = hand axes with z flipped up, centre below the tcp, fingers
        # closed 0.5 mm into its faces so the servo squeezes it from the first physics step
        rot = self.data.site_xmat[self._tcp].reshape(3, 3)
        peg_rot = rot @ np.diag([1.0, -1.0, -1.0])
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, peg_rot.ravel())
        centre = self.data.site_xpos[self._tcp] + rot[:, 2] * ac.PEG_GRASP_OFFSET
        self.data.qpos[self._peg_qadr : self._peg_qadr + 7] = [*centre, *quat]
        self.data.qpos[self._finger_qadr] = ac.PEG_HALF - 0.0005
        self.data.ctrl[self._finger_act] = 0.0
        for _ in range(_SETTLE_STEPS):
            mujoco.mj_step(self.model, self.data)

    # ----------------------------------------------------------------- observations
    def _object_state(self) -> dict[str, np.ndarray]:
        peg_rot = self.data.xmat[self._peg].reshape(3, 3)
        tip = self.data.xpos[self._peg] - peg_rot[:, 2] * ac.PEG_HALF_LEN
        hole = self.data.mocap_pos[self._hole_mocap] + np.array([0.0, 0.0, ac.HOLE_DEPTH])
        return {"peg_pos": tip, "hole_pos": hole}

    def _env_state_keys(self) -> tuple[str, ...]:
        return ("peg_pos", "hole_pos")

    # ----------------------------------------------------------------- evaluate / reward
    def evaluate(self) -> dict[str, bool]:
        """Flags ``aligned``, ``entered`` and ``success`` (tip >= PEG_SUCCESS_DEPTH into the hole)."""
        return ac.peg_insert_evaluate(self.task_state())

    def _reward_terms(self, flags: dict[str, bool]) -> dict[str, float]:
        return ac.peg_insert_reward_terms(self.task_state(), flags)
