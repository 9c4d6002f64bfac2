"""Planning pieces of the Push-T expert: a quasi-static push model and collision-free paths.

Push model: the block slides on the floor with Coulomb friction, so it moves only while pushed
and its twist follows the limit surface of its support. We use the ellipsoidal approximation
(Lee & Cutkosky; Lynch, Maruyama & Mason 1992): a wrench (f, m) about the centre of mass moves
the block with twist (v, w) proportional to (f, m / c^2), where ``c = m_max / f_max`` is a
characteristic length of the pressure distribution. A point pusher sticks to the edge while the
force stays inside the contact friction cone and slides along the edge otherwise (the motion
cone). Frames: world frame of the task (metres, radians); ``*_b`` arrays are in the T's body
frame. Everything is vectorised over candidate pushes.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import shapely

from sim.mujoco_suite.pusht import AGENT_RADIUS, T_OUTLINE, WORKSPACE_SIZE, t_polygon

#: centre of mass of the (uniform) T in its body frame
_T_SHAPE = shapely.Polygon(T_OUTLINE)
COM_B = np.array(_T_SHAPE.centroid.coords[0])


def _area_moment() -> float:
    """Mean squared distance of the T's area from its centroid (radius of gyration squared)."""
    xmin, ymin, xmax, ymax = _T_SHAPE.bounds
    xs, ys = np.meshgrid(np.linspace(xmin, xmax, 241), np.linspace(ymin, ymax, 241))
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1)
    inside = shapely.contains_xy(_T_SHAPE, pts[:, 0], pts[:, 1])
    return float(np.mean(np.sum((pts[inside] - COM_B) ** 2, axis=1)))


#: squared radius of gyration of the T (m^2): weighs rotation errors in the pose error metric
GYRATION_SQ = _area_moment()


def com_pose(pose: np.ndarray) -> np.ndarray:
    """(x, y, theta) of the centre of mass from the body-frame pose (x, y, theta)."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return np.array(
        [pose[0] + c * COM_B[0] - s * COM_B[1], pose[1] + s * COM_B[0] + c * COM_B[1], pose[2]]
    )


def pose_error(com: np.ndarray, theta: np.ndarray, goal_com: np.ndarray) -> np.ndarray:
    """Mean squared displacement (m^2) of the T's area between a pose and the goal.

    For a rigid planar body this is ``|d_com|^2 + 2 (1 - cos d_theta) k^2`` with ``k^2`` the
    squared radius of gyration; it is smooth, wraps angles, and tracks coverage loss.
    """
    d = com - goal_com[..., :2]
    return np.sum(d * d, axis=-1) + 2.0 * (1.0 - np.cos(theta - goal_com[..., 2])) * GYRATION_SQ


@dataclass(frozen=True)
class Candidates:
    """Candidate pushes in the body frame: contact point, outward normal, push direction, edge."""

    point_b: np.ndarray  # (N, 2) contact point on the T's outline
    normal_b: np.ndarray  # (N, 2) outward unit normal of the edge
    dir_b: np.ndarray  # (N, 2) unit push direction (into the block)
    edge_a_b: np.ndarray  # (N, 2) edge start (the contact may slide between a and b)
    edge_b_b: np.ndarray  # (N, 2) edge end
    start_b: np.ndarray  # (N, 2) agent centre where the push starts (clear of the block)


def make_candidates(
    spacing: float, angles: tuple[float, ...], standoff: float, corner_inset: float = 0.003
) -> Candidates:
    """Contact points every ``spacing`` metres along the T's edges, pushed at ``angles`` (rad) off
    the inward normal; keeps only pushes whose start and approach keep the disc off the T."""
    rows = []
    outline = T_OUTLINE
    for i in range(len(outline)):
        a, b = outline[i], outline[(i + 1) % len(outline)]
        length = float(np.linalg.norm(b - a))
        tangent = (b - a) / length
        normal = np.array([tangent[1], -tangent[0]])  # outward for a counter-clockwise outline
        count = max(1, int(np.floor((length - 2 * corner_inset) / spacing)) + 1)
        for s in np.linspace(corner_inset, length - corner_inset, count):
            p = a + s * tangent
            centre = p + AGENT_RADIUS * normal
            for ang in angles:
                c, sn = np.cos(ang), np.sin(ang)
                d = -np.array([c * normal[0] - sn * normal[1], sn * normal[0] + c * normal[1]])
                start = centre - standoff * d
                # the disc must reach the contact along d without touching the T on the way
                sweep = shapely.LineString([start, centre - 1e-4 * d])
                if _T_SHAPE.distance(sweep) < AGENT_RADIUS - 3e-4:
                    continue
                if _T_SHAPE.distance(shapely.Point(start)) < AGENT_RADIUS + 0.002:
                    continue
                rows.append((p, normal, d, a, b, start))
    cols = [np.array(col) for col in zip(*rows, strict=True)]
    return Candidates(*cols)


def _rot(theta: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate (N, 2) vectors by per-row angles theta (N,)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]], axis=1)


def rollout(
    com0: np.ndarray,
    cand: Candidates,
    dir_w: np.ndarray,
    step: float,
    n_steps: int,
    c_ls: float,
    mu: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict the block's centre-of-mass pose while each candidate pushes along ``dir_w``.

    Args:
        com0: (3,) initial (x, y, theta) of the centre of mass.
        cand: N candidate contacts (body frame).
        dir_w: (N, 2) world push directions, fixed during the push (the pusher moves straight).
        step: pusher travel per integration step (m).
        n_steps: number of integration steps.
        c_ls: limit-surface characteristic length (m).
        mu: pusher-block friction coefficient.

    Returns:
        ``coms`` (n_steps + 1, N, 3) predicted poses and ``active`` (n_steps + 1, N) whether the
        pusher still pushes (it stops once it slides off its edge or loses the contact).
    """
    n = len(cand.point_b)
    com = np.repeat(com0[None, :2], n, axis=0)
    theta = np.full(n, com0[2])
    p_b = cand.point_b.copy()
    edge_len = np.linalg.norm(cand.edge_b_b - cand.edge_a_b, axis=1)
    tangent_b = (cand.edge_b_b - cand.edge_a_b) / edge_len[:, None]
    active = np.ones(n, dtype=bool)
    coms, actives = [np.column_stack([com, theta])], [active.copy()]
    c2 = c_ls * c_ls
    for _ in range(n_steps):
        r = _rot(theta, p_b - COM_B)  # COM -> contact, world
        n_in = -_rot(theta, cand.normal_b)
        t_hat = np.stack([-n_in[:, 1], n_in[:, 0]], axis=1)
        vp_n = np.sum(dir_w * n_in, axis=1)
        active &= vp_n > 0.05
        q = np.stack([-r[:, 1], r[:, 0]], axis=1)  # omega x r direction
        qq = np.sum(q * q, axis=1)
        # sticking: force whose twist moves the contact point exactly with the pusher
        f = dir_w - q * (np.sum(q * dir_w, axis=1) / (c2 + qq))[:, None]
        fn, ft = np.sum(f * n_in, axis=1), np.sum(f * t_hat, axis=1)
        slide = np.abs(ft) > mu * np.maximum(fn, 0.0)
        # sliding: force on the friction-cone edge, scaled to match the pusher's normal speed
        f_edge = n_in + (mu * np.sign(ft))[:, None] * t_hat
        vc_edge = f_edge + q * (np.sum(q * f_edge, axis=1) / c2)[:, None]
        scale = vp_n / np.maximum(np.sum(vc_edge * n_in, axis=1), 1e-9)
        f = np.where(slide[:, None], f_edge * scale[:, None], f)
        omega = np.sum(q * f, axis=1) / c2
        v_contact = f + q * omega[:, None]
        slip_w = dir_w - v_contact  # pusher relative to the block's contact point (tangential)
        m = active[:, None] * step
        com = com + f * m
        theta = theta + omega * m[:, 0]
        # the contact slides along its edge (body frame); leaving the edge ends the push
        slip_b = np.sum(_rot(-theta, slip_w) * tangent_b, axis=1)
        p_b = p_b + tangent_b * (slip_b * m[:, 0])[:, None]
        along = np.sum((p_b - cand.edge_a_b) * tangent_b, axis=1)
        active &= (along > 0.0) & (along < edge_len)
        coms.append(np.column_stack([com, theta]))
        actives.append(active.copy())
    return np.stack(coms), np.stack(actives)


# ------------------------------------------------------------------------------ navigation
_ESCAPE_DIRS = np.stack(
    [np.cos(np.arange(16) * np.pi / 8), np.sin(np.arange(16) * np.pi / 8)], axis=1
)


def _clip_ws(p: np.ndarray) -> np.ndarray:
    return np.clip(p, 0.0, WORKSPACE_SIZE)


def plan_path(
    start: np.ndarray, goal: np.ndarray, pose: np.ndarray, clearance: float
) -> list[np.ndarray]:
    """Shortest path for the agent disc from ``start`` to ``goal`` around the T at ``pose``.

    A visibility graph over the corners of the T inflated by the disc radius plus
    ``clearance`` (metres). If the agent starts closer than that (e.g. right after a push) it
    first backs straight away from the block. Returns waypoints after ``start``, ending at
    ``goal``; a straight line when no path exists.
    """
    block = t_polygon(pose)
    keep_out = block.buffer(AGENT_RADIUS + 0.5 * clearance, join_style="mitre")
    prefix: list[np.ndarray] = []
    for _ in range(3):
        if not keep_out.contains(shapely.Point(start)):
            break
        # back off in the direction that gains the most clearance (in the notch between bar and
        # stem, moving along one edge's normal would drag the disc along the other edge)
        ring = start + clearance * 1.5 * _ESCAPE_DIRS
        gaps = shapely.distance(block, shapely.points(ring))
        start = _clip_ws(ring[int(np.argmax(gaps))])
        prefix.append(start)
    corners = block.buffer(AGENT_RADIUS + clearance * 1.5, join_style="mitre")
    nodes = [start, goal] + [_clip_ws(np.array(v)) for v in corners.exterior.coords[:-1]]
    pts = np.array(nodes)
    n = len(nodes)
    segs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    lines = shapely.linestrings([[pts[i], pts[j]] for i, j in segs])
    free = ~shapely.intersects(lines, keep_out)
    adj: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for (i, j), ok in zip(segs, free, strict=True):
        if ok or (i, j) == (0, 1):
            cost = float(np.linalg.norm(pts[i] - pts[j])) * (1.0 if ok else 10.0)
            adj[i].append((j, cost))
            adj[j].append((i, cost))
    dist, prev = [np.inf] * n, [-1] * n
    dist[0] = 0.0
    heap = [(0.0, 0)]
    while heap:
        d, i = heapq.heappop(heap)
        if d > dist[i]:
            continue
        for j, w in adj[i]:
            if d + w < dist[j]:
                dist[j], prev[j] = d + w, i
                heapq.heappush(heap, (d + w, j))
    path, i = [], 1
    while i > 0:
        path.append(pts[i])
        i = prev[i]
    return prefix + path[::-1]


def path_length(start: np.ndarray, path: list[np.ndarray]) -> float:
    """Length (m) of the polyline start -> path[0] -> ... -> path[-1]."""
    pts = np.vstack([start, *path])
    return float(np.sum(np.linalg.norm(np.diff(pts, axis=0), axis=1)))
