"""MuJoCo task suite (the embedded default backend)."""

import sim.mujoco_suite.lift  # noqa: F401  (registers the arm tasks)
import sim.mujoco_suite.lift_color  # noqa: F401
import sim.mujoco_suite.peg_insert  # noqa: F401
import sim.mujoco_suite.reach  # noqa: F401
from sim.mujoco_suite import pusht  # noqa: F401  (registers the task)
