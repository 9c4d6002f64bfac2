"""Scripted experts of the Panda arm tasks (reach, lift, peg_insert), any backend.

They read only ``env.unwrapped.task_state()`` (``ee_pos``, ``gripper_width`` and the task's
object keys), so one expert drives the MuJoCo and the PyBullet backends alike. Motions are
plausible demonstrations: proportional control towards a waypoint, saturated to the action
bounds (straight-line paths), with the change of the xyz action per step rate-limited and a
small seeded Gaussian noise in free-space phases. The gripper command is binary (-1 open,
+1 close), as a human teleoperator's button would be.
"""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_expert
from sim import arm_common as ac

OPEN, CLOSE = -1.0, 1.0


class ArmExpert:
    """Shared waypoint-following machinery; subclasses implement :meth:`_plan`.

    Args:
        env: the task env (only ``env.unwrapped.task_state()`` is used).
    """

    #: proportional gain: fraction of the remaining distance commanded per step
    gain: float = 0.6
    #: largest change of any xyz action component between consecutive steps
    max_rate: float = 0.5
    #: standard deviation of the exploration-like noise added in free-space phases
    noise: float = 0.05

    def __init__(self, env) -> None:
        self.env = env
        self.rng = np.random.default_rng()
        self._prev = np.zeros(3)
        self.phase = "start"
        self._counter = 0

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (``seed`` makes the noise reproducible)."""
        self.rng = np.random.default_rng(seed)
        self._prev = np.zeros(3)
        self.phase = "start"
        self._counter = 0

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """One action (float32, shape (4,), in [-1, 1]); ``obs`` is ignored (privileged expert)."""
        state = self.env.unwrapped.task_state()
        goal, gripper, speed, noisy = self._plan(state)
        move = self._move(np.asarray(state["ee_pos"], float), goal, speed, noisy)
        return np.concatenate([move, [gripper]]).astype(np.float32)

    def _plan(self, state: dict[str, np.ndarray]) -> tuple[np.ndarray, float, float, bool]:
        """(tcp goal in metres, gripper command, max action magnitude, add noise?) for this step."""
        raise NotImplementedError

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self._counter = 0

    def _move(self, ee: np.ndarray, goal: np.ndarray, speed: float, noisy: bool) -> np.ndarray:
        """Saturated, rate-limited proportional step from ``ee`` towards ``goal``."""
        v = self.gain * (goal - ee) / ac.ACTION_SCALE
        peak = float(np.max(np.abs(v)))
        if peak > speed:  # scale the whole vector: keeps the path a straight line
            v *= speed / peak
        if noisy:
            v = v + self.rng.normal(0.0, self.noise, size=3)
        v = self._prev + np.clip(v - self._prev, -self.max_rate, self.max_rate)
        v = np.clip(v, -1.0, 1.0)
        self._prev = v
        return v


@register_expert("reach")
class ReachExpert(ArmExpert):
    """Move the tcp straight to the target."""

    def _plan(self, state):
        return np.asarray(state["target_pos"], float), OPEN, 1.0, True


@register_expert("lift")
class LiftExpert(ArmExpert):
    """Above the cube -> descend around it -> close and wait -> lift."""

    hover = 0.08  # tcp height above the cube centre before descending (m)
    grasp_wait = 4  # control steps with the gripper closing before lifting
    lift_height = 0.22  # tcp height to carry the cube to (m above the table)

    def _plan(self, state):
        ee, cube = np.asarray(state["ee_pos"], float), np.asarray(state["cube_pos"], float)
        if self.phase == "start":
            self._set_phase("approach")
        if self.phase == "approach":
            goal = cube + [0.0, 0.0, self.hover]
            if np.linalg.norm((goal - ee)[:2]) < 0.006 and abs(goal[2] - ee[2]) < 0.02:
                self._set_phase("descend")
            else:
                return goal, OPEN, 1.0, True
        if self.phase == "descend":
            # tcp (between the pads) to the cube centre; keep correcting xy on the way down
            goal = cube.copy()
            self._counter += 1
            if np.linalg.norm(goal - ee) < 0.006 or self._counter > 12:
                self._set_phase("grasp")
            else:
                return goal, OPEN, 0.6, False
        if self.phase == "grasp":
            self._counter += 1
            if self._counter > self.grasp_wait:
                self._set_phase("lift")
                self._lift_xy = ee[:2].copy()
            else:
                return ee.copy(), CLOSE, 0.3, False
        goal = np.array([*self._lift_xy, ac.TABLE_Z + self.lift_height])
        return goal, CLOSE, 0.8, False


@register_expert("lift_color")
class LiftColorExpert(LiftExpert):
    """lift's expert on the instructed cube (``lift_color``'s task state names it ``cube_pos``)."""


@register_expert("peg_insert")
class PegInsertExpert(ArmExpert):
    """Centre the peg tip over the opening (from the measured peg, not the hand), then push down.

    The hand-to-peg offset is re-measured every step, so a peg that slipped or tilted in the
    grasp is still aligned by its tip.
    """

    hover = 0.012  # tip height above the opening while aligning (m)
    align_tol = 0.0012  # xy tip error (m) accepted before inserting (clearance is 2 mm a side)

    def _plan(self, state):
        ee = np.asarray(state["ee_pos"], float)
        peg, hole = np.asarray(state["peg_pos"], float), np.asarray(state["hole_pos"], float)
        xy_err = float(np.linalg.norm(hole[:2] - peg[:2]))
        if self.phase == "start":
            self._set_phase("align")
        if self.phase == "insert" and xy_err > 0.004 and peg[2] > hole[2] - 0.002:
            self._set_phase("align")  # lost alignment before entering: back off and re-centre
        if self.phase == "align":
            tip_goal = hole + [0.0, 0.0, self.hover]
            near = np.linalg.norm(tip_goal - peg)
            if xy_err < self.align_tol and abs(tip_goal[2] - peg[2]) < 0.006:
                self._set_phase("insert")
            else:
                # far away: fast and a little noisy; close to the opening: slow and exact
                fine = near < 0.03
                return ee + (tip_goal - peg), CLOSE, 0.4 if fine else 1.0, not fine
        tip_goal = hole - [0.0, 0.0, ac.HOLE_DEPTH]
        return ee + (tip_goal - peg), CLOSE, 0.3, False
