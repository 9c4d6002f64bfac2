"""Lift color (MuJoCo): a red and a blue cube on the table; the instruction says which to lift.

The shared-scene language task: both cubes are in every episode and the observation does not
say which is wanted, so a policy that ignores the instruction succeeds about half of the time.
The goal cube is ``task_state()["cube_pos"]``, so lift's scripted expert and success/reward
functions (:mod:`sim.arm_common`) apply unchanged.
"""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_task
from robot_learning.language import Instructions
from sim import arm_common
from sim.mujoco_suite.arm_base import MujocoArmEnv

#: the cubes' centres are at least this far apart (m): the open fingers (8 cm) fit around one
#: cube without touching the other
MIN_GAP = 0.10
COLORS = {"red": "0.85 0.15 0.1 1", "blue": "0.1 0.25 0.85 1"}


def _goal_instructions(color: str) -> Instructions:
    return Instructions(
        train=(
            f"lift the {color} cube",
            f"pick up the {color} cube",
            f"grasp the {color} block and raise it",
            f"raise the {color} cube off the table",
        ),
        heldout=(f"grab the {color} one and lift it", f"hold the {color} block up in the air"),
    )


@register_task("lift_color")
class LiftColorEnv(arm_common.LiftTask, MujocoArmEnv):
    """Lift the cube of the instructed colour (red or blue) placed beside one of the other."""

    task_description = "lift the red cube"
    instructions = None
    goals = {color: _goal_instructions(color) for color in COLORS}
    goal_keywords = {color: color for color in COLORS}
    env_state_names = tuple(f"{c}_{a}" for c in COLORS for a in "xyz")
    randomized_bodies = tuple(COLORS)

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self._cubes = {c: self.body_id(c) for c in COLORS}
        self._qadr = {c: self.model.jnt_qposadr[self.model.joint(c).id] for c in COLORS}
        self.goal, self.instruction = "red", self.goals["red"].train[0]  # until the first reset

    # ----------------------------------------------------------------- scene
    def _objects_xml(self) -> str:
        h = arm_common.CUBE_HALF
        return "".join(
            f"""
    <body name="{c}" pos="0.5 {0.1 * i - 0.05} {arm_common.TABLE_Z + h}">
      <freejoint name="{c}"/>
      <geom name="{c}" type="box" size="{h} {h} {h}" mass="{arm_common.CUBE_MASS}"
            rgba="{rgba}" condim="4"/>
    </body>"""
            for i, (c, rgba) in enumerate(COLORS.items())
        )

    # ----------------------------------------------------------------- reset
    def _reset_objects(self, rng: np.random.Generator) -> None:
        if self.cfg.randomization.object_pose:
            red = self.sample_cube_xy(rng)
            for _ in range(100):  # rejection sampling; ~1 in 3 draws is too close
                blue = self.sample_cube_xy(rng)
                if np.linalg.norm(blue - red) >= MIN_GAP:
                    break
            else:  # pragma: no cover - needs 100 rejections in a row
                blue = red + [0.0, MIN_GAP if red[1] < 0 else -MIN_GAP]
        else:
            centre = (arm_common.LIFT_CUBE_LOW + arm_common.LIFT_CUBE_HIGH) / 2
            red, blue = centre - [0.0, MIN_GAP / 2], centre + [0.0, MIN_GAP / 2]
        z = arm_common.TABLE_Z + arm_common.CUBE_HALF
        for color, xy in (("red", red), ("blue", blue)):
            adr = self._qadr[color]
            self.data.qpos[adr : adr + 7] = [*xy, z, 1, 0, 0, 0]

    # ----------------------------------------------------------------- observations
    def _object_state(self) -> dict[str, np.ndarray]:
        pos = {f"{c}_pos": self.data.xpos[b].copy() for c, b in self._cubes.items()}
        return {**pos, "cube_pos": pos[f"{self.goal}_pos"].copy()}

    def _env_state_keys(self) -> tuple[str, ...]:
        return tuple(f"{c}_pos" for c in COLORS)

    def evaluate(self) -> dict[str, bool]:
        """lift's flags on the instructed cube, plus ``wrong_lifted``: the other cube is up."""
        state = self.task_state()
        flags = arm_common.lift_evaluate(state)
        other = next(c for c in COLORS if c != self.goal)
        height = float(state[f"{other}_pos"][2]) - arm_common.CUBE_HALF - arm_common.TABLE_Z
        return {**flags, "wrong_lifted": height > arm_common.LIFT_SUCCESS_HEIGHT}
