"""Arm kinematics from a robot description through MuJoCo: forward kinematics and damped
least-squares inverse kinematics of one chain.

The description is MJCF or URDF text (a URDF is loaded with its visual and collision geometry
dropped, so mesh files are not needed: kinematics only). The end effector is an MJCF site, or a
body (URDF link) plus an offset in its frame. The simulated Panda tasks and the ``ros2_control``
robot driver share this solver, so an end-effector policy drives a joint controller exactly as
it drove the simulator.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

#: margin (rad) kept inside the joint limits by the solver
LIMIT_MARGIN = 1e-3


def load_model(xml: str):
    """A MuJoCo model of ``xml`` (MJCF, or URDF with visual/collision geometry dropped)."""
    import mujoco

    if re.search(r"<robot[\s>]", xml) and "<mujoco" not in xml.split("<robot", 1)[0]:
        xml = _kinematic_urdf(xml)
    try:
        return mujoco.MjModel.from_xml_string(xml)
    except ValueError as exc:
        raise ValueError(f"cannot load the robot description: {exc}") from None


def _kinematic_urdf(xml: str) -> str:
    """URDF text without meshes, with MuJoCo compiler options that accept massless links."""
    for tag in ("visual", "collision"):
        xml = re.sub(rf"<{tag}[\s>].*?</{tag}>", "", xml, flags=re.S)
        xml = re.sub(rf"<{tag}[^>]*/>", "", xml)
    compiler = (
        '<mujoco><compiler discardvisual="true" fusestatic="false" '
        'boundmass="0.001" boundinertia="0.00001"/></mujoco>'
    )
    return re.sub(r"(<robot[^>]*>)", r"\1" + compiler, xml, count=1)


class ArmKinematics:
    """FK and DLS IK of the chain ``joints`` of ``model`` to the end effector.

    Args:
        model: a MuJoCo ``MjModel`` (see :func:`load_model`).
        joints: the chain's joint names, base to tip (hinge/slide joints).
        site: the end effector as an MJCF site; or
        body, offset: a body (URDF link) and a point in its frame.
        q_rest: posture the nullspace term pulls towards (default: the middle of the limits).
        damping, null_gain, iters: solver settings (one iteration per control step by default,
            warm-started from the previous target, as a resolved-rate controller).
        dq_max: largest joint change per :meth:`ik` call (rad), e.g. velocity limit / rate.
    """

    def __init__(
        self,
        model,
        joints: Sequence[str],
        site: str | None = None,
        body: str | None = None,
        offset: Sequence[float] = (0.0, 0.0, 0.0),
        q_rest: Sequence[float] | None = None,
        damping: float = 0.03,
        null_gain: float = 0.5,
        iters: int = 1,
        dq_max: Sequence[float] | float | None = None,
    ) -> None:
        import mujoco

        self._mj = mujoco
        self.model = model
        self.data = mujoco.MjData(model)
        ids = []
        for name in joints:
            jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
            if jid < 0:
                raise ValueError(f"the robot description has no joint {name!r}")
            ids.append(jid)
        self.joints = tuple(joints)
        self._qadr = np.array([model.jnt_qposadr[j] for j in ids])
        self._dadr = np.array([model.jnt_dofadr[j] for j in ids])
        ranges = np.array([model.jnt_range[j] for j in ids], np.float64)
        limited = np.array([bool(model.jnt_limited[j]) for j in ids])
        self.q_lo = np.where(limited, ranges[:, 0] + LIMIT_MARGIN, -np.inf)
        self.q_hi = np.where(limited, ranges[:, 1] - LIMIT_MARGIN, np.inf)
        if (site is None) == (body is None):
            raise ValueError("give the end effector as a site or as a body (+ offset), not both")
        kind, name = (mujoco.mjtObj.mjOBJ_SITE, site) if site else (mujoco.mjtObj.mjOBJ_BODY, body)
        self._ee = mujoco.mj_name2id(model, kind, name)
        if self._ee < 0:
            raise ValueError(f"the robot description has no {'site' if site else 'body'} {name!r}")
        self._site = site is not None
        self._offset = np.asarray(offset, np.float64)
        n = len(ids)
        self.q_rest = (
            np.asarray(q_rest, np.float64)
            if q_rest is not None
            else np.where(limited, ranges.mean(axis=1), 0.0)
        )
        self.damping, self.null_gain, self.iters = damping, null_gain, iters
        self.dq_max = None if dq_max is None else np.broadcast_to(np.asarray(dq_max, np.float64), n)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._eye_task, self._eye_joint = np.eye(6), np.eye(n)

    def _pose(self) -> tuple[np.ndarray, np.ndarray]:
        d = self.data
        if self._site:
            return d.site_xpos[self._ee], d.site_xmat[self._ee].reshape(3, 3)
        rot = d.xmat[self._ee].reshape(3, 3)
        return d.xpos[self._ee] + rot @ self._offset, rot

    def _set(self, q: np.ndarray) -> None:
        self.data.qpos[self._qadr] = q
        self._mj.mj_kinematics(self.model, self.data)

    def fk(self, q: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (3,) and rotation matrix (3, 3) for joint positions ``q``."""
        self._set(np.asarray(q, np.float64))
        pos, rot = self._pose()
        return pos.copy(), rot.copy()

    def _jacobian(self, pos: np.ndarray) -> np.ndarray:
        mj, m, d = self._mj, self.model, self.data
        mj.mj_comPos(m, d)
        if self._site:
            mj.mj_jacSite(m, d, self._jacp, self._jacr, self._ee)
        else:
            mj.mj_jac(m, d, self._jacp, self._jacr, pos, self._ee)
        return np.vstack([self._jacp[:, self._dadr], self._jacr[:, self._dadr]])

    def ik(self, target_pos, target_rot, q0) -> np.ndarray:
        """Joint positions moving the end effector from ``q0`` towards ``target_pos`` with
        orientation ``target_rot`` (``iters`` damped least-squares steps, nullspace pull to
        ``q_rest``, limits and ``dq_max`` applied)."""
        q0 = np.asarray(q0, np.float64)
        target_pos, target_rot = np.asarray(target_pos), np.asarray(target_rot)
        q = q0.copy()
        lam2 = self.damping**2
        for _ in range(self.iters):
            self._set(q)
            pos, rot = self._pose()
            # small-angle orientation error (world frame) from current to desired axes
            err_rot = 0.5 * (
                np.cross(rot[:, 0], target_rot[:, 0])
                + np.cross(rot[:, 1], target_rot[:, 1])
                + np.cross(rot[:, 2], target_rot[:, 2])
            )
            err = np.concatenate([target_pos - pos, err_rot])
            jac = self._jacobian(pos)
            jjt = jac @ jac.T
            dq = jac.T @ np.linalg.solve(jjt + lam2 * self._eye_task, err)
            # nullspace projector from the (nearly) undamped pseudo-inverse, so the posture pull
            # does not leak into the end-effector pose
            null = self._eye_joint - jac.T @ np.linalg.solve(jjt + 1e-6 * self._eye_task, jac)
            dq += null @ (self.null_gain * (self.q_rest - q))
            q = np.clip(q + dq, self.q_lo, self.q_hi)
        if self.dq_max is None:
            return q
        return q0 + np.clip(q - q0, -self.dq_max, self.dq_max)
