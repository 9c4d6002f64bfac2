"""Scripted Push-T expert: a closed-loop pushing planner with smooth, speed-limited motion.

Every re-plan scores a few hundred candidate pushes (contact point on the T's outline x push
direction) with a quasi-static push model (:mod:`sim.experts.pusht_planner`): each is rolled
out for a few centimetres, the push length with the lowest predicted pose error is kept, and
the push that removes the most error per unit of time (travel around the block + pushing) wins.
The agent then walks around the block on a collision-free path to a point just outside the
contact, pushes, and re-plans. Near the goal the same loop makes millimetre corrections.

The commanded target moves by at most :data:`MAX_STEP` metres per control step, ramps its speed
up gradually and never runs more than :data:`MAX_LAG` ahead of the agent, so demonstrations are
smooth. The expert reads only ``env.unwrapped.task_state()``.
"""

from __future__ import annotations

import functools

import numpy as np

from robot_learning.envs import register_expert
from sim.experts.pusht_planner import (
    Candidates,
    com_pose,
    make_candidates,
    path_length,
    plan_path,
    pose_error,
    rollout,
)
from sim.mujoco_suite.pusht import AGENT_RADIUS, WORKSPACE_SIZE, transform

#: largest displacement (m) of the commanded target per control step (0.2 m/s at 10 Hz)
MAX_STEP = 0.02
#: target speeds (m per step) while travelling around the block and while pushing
FREE_SPEED = MAX_STEP
PUSH_SPEED = 0.01
#: speed ramp-up limit (m per step, per step) and speed through path corners
ACCEL = 0.005
CORNER_SPEED = 0.006
#: the target never leads the agent by more than this (m)
MAX_LAG = 0.03
#: gap (m) between the agent disc and the block where a push starts
STANDOFF = 0.01
#: clearance (m) kept between the agent disc and the block while travelling around it
CLEARANCE = 0.004
#: fitted quasi-static model: limit-surface length c (m) and pusher-block friction, from pushes
#: in the MuJoCo scene (mean prediction error ~2 mm and ~2 deg over 3 cm pushes; the feet
#: support resists turning more than the ideal ellipsoid, c = 0.038, predicts)
LIMIT_SURFACE_C = 0.06
CONTACT_MU = 0.25
#: push directions (rad off the inward edge normal) and contact spacing (m) considered
PUSH_ANGLES = (0.0, 0.3, -0.3, 0.6, -0.6)
CONTACT_SPACING = 0.005
#: longest push (m) before re-planning
MAX_PUSH = 0.05

#: fixed cost (control steps) of every push: lining up, contact, settling; favours longer pushes
PUSH_OVERHEAD = 3.0


@functools.cache
def _candidates() -> Candidates:
    """Candidate pushes; static in the block frame, so built once per process."""
    return make_candidates(CONTACT_SPACING, PUSH_ANGLES, STANDOFF)


def _rotate(theta: float, v: np.ndarray) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return v @ np.array([[c, -s], [s, c]]).T


@register_expert("pusht")
class PushTExpert:
    """Closed-loop pushing planner for Push-T (reads ``task_state()`` only).

    Args:
        env: the Push-T environment (any backend exposing the Push-T ``task_state()``).
    """

    def __init__(self, env) -> None:
        self.env = env
        self.cand = _candidates()
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the current plan; the expert is deterministic, ``seed`` is accepted for API."""
        self._target: np.ndarray | None = None
        self._speed = 0.0
        # (waypoint, speed, stop there and wait for the agent, is the push itself)
        self._path: list[tuple[np.ndarray, float, bool, bool]] = []
        self._plan_pose: np.ndarray | None = None
        self._pushing = False
        self._stalled = 0

    # ----------------------------------------------------------------- control loop
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Next absolute agent target (x, y), float32, inside the workspace."""
        state = self.env.unwrapped.task_state()
        agent = np.asarray(state["agent_pos"], dtype=float)
        pose = np.asarray(state["block_pose"], dtype=float)
        goal = np.asarray(state["goal_pose"], dtype=float)
        if self._target is None:
            self._target = agent.copy()
        if self._path and not self._pushing and self._block_moved(pose):
            self._path = []  # bumped the block while travelling: the plan is stale
        if not self._path:
            self._plan(agent, pose, goal)
        self._advance(agent)
        return self._target.astype(np.float32)

    def _block_moved(self, pose: np.ndarray) -> bool:
        d = pose - self._plan_pose
        return bool(
            np.hypot(d[0], d[1]) > 0.003 or abs((d[2] + np.pi) % (2 * np.pi) - np.pi) > 0.03
        )

    def _advance(self, agent: np.ndarray) -> None:
        """Move the target along the path: bounded speed and ramp-up, slow at corners."""
        if not self._path:
            return
        waypoint, speed, stop, _ = self._path[0]
        to_wp = waypoint - self._target
        dist = float(np.linalg.norm(to_wp))
        end_speed = 0.0 if stop else CORNER_SPEED
        desired = min(speed, np.sqrt(end_speed**2 + 2 * ACCEL * dist), self._speed + ACCEL)
        if np.linalg.norm(self._target - agent) > MAX_LAG:
            desired = 0.0  # let the agent catch up instead of running away from it
        step = min(desired, dist)
        self._stalled = self._stalled + 1 if step < 1e-4 else 0
        if dist > 1e-9:
            self._target = self._target + to_wp / dist * step
        self._speed = step
        if dist - step < 1e-6:
            self._target = waypoint.copy()
            if not stop or np.linalg.norm(agent - waypoint) < 0.004 or self._stalled > 3:
                self._path.pop(0)
                self._pushing = bool(self._path) and self._path[0][3]
        if self._stalled > 8:  # blocked (e.g. block against a wall): give up this plan
            self._path = []
        if not self._path:
            self._pushing = False
            self._stalled = 0

    # ----------------------------------------------------------------- planning
    def _plan(self, agent: np.ndarray, pose: np.ndarray, goal: np.ndarray) -> None:
        """Choose the next push and set the path: travel waypoints, then the push itself."""
        cand = self.cand
        self._plan_pose = pose.copy()
        com0, goal_com = com_pose(pose), com_pose(goal)
        err0 = float(np.sqrt(pose_error(com0[:2], com0[2], goal_com)))
        # integrate finely near the goal, where corrections are millimetres
        res = float(np.clip(err0 / 20.0, 0.0005, 0.002))
        n_steps = int(np.ceil(min(MAX_PUSH, 4 * err0 + 0.01) / res))
        dir_w = _rotate(pose[2], cand.dir_b)
        coms, _ = rollout(com0, cand, dir_w, res, n_steps, LIMIT_SURFACE_C, CONTACT_MU)
        err = np.sqrt(pose_error(coms[..., :2], coms[..., 2], goal_com))  # (n_steps + 1, N)
        best_j = np.argmin(err, axis=0)
        idx = np.arange(err.shape[1])
        gain = err0 - err[best_j, idx]
        push_len = best_j * res
        contact_w = transform(cand.point_b + AGENT_RADIUS * cand.normal_b, pose)
        start_w = transform(cand.start_b, pose)
        reachable = np.all((start_w > 0.0) & (start_w < WORKSPACE_SIZE), axis=1)
        # already in place (right after a push along the same line): no travel needed
        rel = contact_w - agent
        along = np.sum(rel * dir_w, axis=1)
        lateral = np.linalg.norm(rel - along[:, None] * dir_w, axis=1)
        in_place = (lateral < 0.002) & (along > -0.002) & (along < STANDOFF + 0.003)
        travel = np.where(
            in_place, np.maximum(along, 0.0), np.linalg.norm(start_w - agent, axis=1) + STANDOFF
        )
        # progress rate: metres of pose error removed per control step spent
        steps = travel / FREE_SPEED + push_len / PUSH_SPEED + PUSH_OVERHEAD
        score = np.where(reachable & (gain > 1e-5), gain / steps, -np.inf)
        # exact travel (around the block) only for the most promising few
        order = np.argsort(-score)[:8]
        best, best_score, best_path = -1, -np.inf, []
        for i in order:
            if not np.isfinite(score[i]):
                break
            if in_place[i]:
                path = []
                length = float(max(along[i], 0.0))
            else:
                path = plan_path(agent, start_w[i], pose, CLEARANCE)
                length = path_length(agent, path) + STANDOFF
            s = gain[i] / (length / FREE_SPEED + push_len[i] / PUSH_SPEED + PUSH_OVERHEAD)
            if s > best_score:
                best, best_score, best_path = i, s, path
        if best < 0:  # no push is predicted to help (model error near the goal): a short nudge
            best = int(np.argmax(np.where(reachable, gain, -np.inf)))
            best_path = plan_path(agent, start_w[best], pose, CLEARANCE)
            push_len[best] = 0.005
        end = contact_w[best] + dir_w[best] * push_len[best]
        self._path = [
            (np.clip(p, 0.0, WORKSPACE_SIZE), FREE_SPEED, False, False) for p in best_path
        ]
        if self._path:
            self._path[-1] = (self._path[-1][0], FREE_SPEED, True, False)  # line up before pushing
        self._path.append((np.clip(end, 0.0, WORKSPACE_SIZE), PUSH_SPEED, True, True))
        self._pushing = not best_path
