"""Fake ``isaacgym.gymapi``: the calls the project makes, on a small physics of its own.

Simulator state lives inside the fake, as in Isaac Gym: a tensor from
``acquire_dof_state_tensor`` changes only on ``refresh_dof_state_tensor``, and writes reach the
simulation only through ``set_dof_state_tensor_indexed`` / ``set_dof_actuation_force_tensor``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from isaacgym.gymtorch import GymTensor

SIM_FLEX, SIM_PHYSX = 0, 1
UP_AXIS_Y, UP_AXIS_Z = 0, 1
DOF_MODE_NONE, DOF_MODE_POS, DOF_MODE_VEL, DOF_MODE_EFFORT = 0, 1, 2, 3
DOF_PROPERTIES = np.dtype(
    [
        ("hasLimits", bool),
        ("lower", np.float32),
        ("upper", np.float32),
        ("driveMode", np.int32),
        ("velocity", np.float32),
        ("effort", np.float32),
        ("stiffness", np.float32),
        ("damping", np.float32),
        ("friction", np.float32),
        ("armature", np.float32),
    ]
)


@dataclass
class Vec3:
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass
class Quat:
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    w: float = 1.0


@dataclass
class Transform:
    p: Vec3 = field(default_factory=Vec3)
    r: Quat = field(default_factory=Quat)


class PhysXParams:
    def __init__(self) -> None:
        self.num_threads, self.solver_type, self.use_gpu = 0, 1, False
        self.num_position_iterations, self.num_velocity_iterations = 4, 1
        self.contact_offset, self.rest_offset = 0.02, 0.0
        self.bounce_threshold_velocity, self.max_depenetration_velocity = 0.2, 100.0
        self.default_buffer_size_multiplier, self.max_gpu_contact_pairs = 2.0, 1048576


class SimParams:
    def __init__(self) -> None:
        self.dt, self.substeps, self.up_axis = 1 / 60, 2, UP_AXIS_Y
        self.gravity = Vec3(0.0, -9.8, 0.0)
        self.use_gpu_pipeline = False
        self.physx = PhysXParams()


class PlaneParams:
    def __init__(self) -> None:
        self.normal = Vec3(0.0, 1.0, 0.0)
        self.distance = self.static_friction = self.dynamic_friction = self.restitution = 0.0


class AssetOptions:
    def __init__(self) -> None:
        self.fix_base_link = False
        self.default_dof_drive_mode = DOF_MODE_NONE
        self.disable_gravity = False
        self.armature = self.angular_damping = self.linear_damping = 0.0


@dataclass
class Joint:
    name: str
    kind: str  # prismatic | revolute
    parent: str
    child: str
    child_mass: float
    child_com: float  # distance of the child's centre of mass from the joint
    lower: float
    upper: float


@dataclass
class Asset:
    joints: list[Joint]


@dataclass
class Env:
    index: int
    actors: list[tuple[Asset, np.ndarray]] = field(default_factory=list)


class Sim:
    def __init__(self, params: SimParams) -> None:
        self.params = params
        self.envs: list[Env] = []
        self.assets: list[Asset] = []
        self.prepared = False


def _load_urdf(path: Path) -> Asset:
    root = ET.parse(path).getroot()
    masses, coms = {}, {}
    for link in root.findall("link"):
        inertial = link.find("inertial")
        mass = inertial.find("mass") if inertial is not None else None
        origin = inertial.find("origin") if inertial is not None else None
        masses[link.get("name")] = float(mass.get("value")) if mass is not None else 0.0
        xyz = [float(v) for v in origin.get("xyz", "0 0 0").split()] if origin is not None else [0]
        coms[link.get("name")] = float(np.linalg.norm(xyz))
    joints = []
    for joint in root.findall("joint"):
        kind = joint.get("type")
        if kind not in ("prismatic", "revolute", "continuous"):
            continue
        limit = joint.find("limit")
        child = joint.find("child").get("link")
        joints.append(
            Joint(
                joint.get("name"),
                "prismatic" if kind == "prismatic" else "revolute",
                joint.find("parent").get("link"),
                child,
                masses.get(child, 0.0),
                coms.get(child, 0.0),
                float(limit.get("lower", -math.inf)) if limit is not None else -math.inf,
                float(limit.get("upper", math.inf)) if limit is not None else math.inf,
            )
        )
    return Asset(joints)


class Gym:
    """The fake simulator: one per process, like ``acquire_gym()``'s."""

    def create_sim(self, compute_device=0, graphics_device=0, type=SIM_FLEX, params=None) -> Sim:
        if type != SIM_PHYSX:
            raise ValueError("the fake simulates SIM_PHYSX scenes only")
        return Sim(params or SimParams())

    def add_ground(self, sim: Sim, params: PlaneParams) -> None:
        sim.ground = params

    def load_asset(self, sim: Sim, rootpath: str, filename: str, options=None) -> Asset:
        path = Path(rootpath) / filename
        if not path.is_file():
            raise FileNotFoundError(path)
        asset = _load_urdf(path)
        sim.assets.append(asset)
        return asset

    def get_asset_dof_count(self, asset: Asset) -> int:
        return len(asset.joints)

    def create_env(self, sim: Sim, lower: Vec3, upper: Vec3, per_row: int) -> Env:
        if sim.prepared:
            raise RuntimeError("create_env after prepare_sim")
        env = Env(len(sim.envs))
        sim.envs.append(env)
        return env

    def create_actor(self, env, asset, pose, name=None, group=-1, filter=-1, segmentationId=0):
        props = np.zeros(len(asset.joints), DOF_PROPERTIES)
        props["lower"] = [j.lower for j in asset.joints]
        props["upper"] = [j.upper for j in asset.joints]
        env.actors.append((asset, props))
        return len(env.actors) - 1

    def get_actor_dof_properties(self, env: Env, handle: int) -> np.ndarray:
        return env.actors[handle][1].copy()

    def set_actor_dof_properties(self, env: Env, handle: int, props: np.ndarray) -> bool:
        env.actors[handle] = (env.actors[handle][0], np.array(props, DOF_PROPERTIES))
        return True

    def prepare_sim(self, sim: Sim) -> bool:
        counts = {sum(len(a.joints) for a, _ in env.actors) for env in sim.envs}
        if len(counts) != 1:
            raise RuntimeError("the fake needs the same DOFs in every env")
        sim.num_dofs = counts.pop()
        sim.state = torch.zeros((len(sim.envs), sim.num_dofs, 2))
        sim.forces = torch.zeros((len(sim.envs), sim.num_dofs))
        sim.view = torch.zeros((len(sim.envs) * sim.num_dofs, 2))
        sim.prepared = True
        return True

    def get_sim_dof_count(self, sim: Sim) -> int:
        return len(sim.envs) * sim.num_dofs

    def acquire_dof_state_tensor(self, sim: Sim) -> GymTensor:
        return GymTensor(sim.view)

    def refresh_dof_state_tensor(self, sim: Sim) -> bool:
        sim.view.copy_(sim.state.reshape(-1, 2))
        return True

    def set_dof_actuation_force_tensor(self, sim: Sim, forces: GymTensor) -> bool:
        sim.forces = forces.data.detach().reshape(len(sim.envs), sim.num_dofs).clone().cpu()
        return True

    def set_dof_state_tensor_indexed(self, sim, state: GymTensor, indices: GymTensor, n: int):
        ids = indices.data.long()[:n].cpu()
        if indices.data.dtype != torch.int32:
            raise TypeError("actor indices must be int32, as in Isaac Gym")
        rows = state.data.detach().reshape(len(sim.envs), sim.num_dofs, 2).cpu()
        sim.state[ids] = rows[ids]
        return True

    def simulate(self, sim: Sim) -> None:
        params = sim.params
        g = abs(params.gravity.z if params.up_axis == UP_AXIS_Z else params.gravity.y)
        h = params.dt / max(1, params.substeps)
        for _ in range(max(1, params.substeps)):
            for env in sim.envs:
                self._substep(sim, env, g, h)

    def _substep(self, sim: Sim, env: Env, g: float, h: float) -> None:
        state, forces = sim.state[env.index], sim.forces[env.index]
        offset = 0
        for asset, props in env.actors:
            joints = asset.joints
            acc = np.zeros(len(joints))
            for d, joint in enumerate(joints):
                force = (
                    float(forces[offset + d]) if props["driveMode"][d] == DOF_MODE_EFFORT else 0.0
                )
                if joint.kind == "prismatic":
                    pole = next((p for p, j in enumerate(joints) if j.parent == joint.child), None)
                    if pole is None or joints[pole].kind != "revolute":
                        acc[d] = force / max(joint.child_mass, 1e-3)
                        continue
                    m, length = joints[pole].child_mass, joints[pole].child_com
                    total = joint.child_mass + m
                    theta, omega = float(state[offset + pole, 0]), float(state[offset + pole, 1])
                    temp = (force + m * length * omega**2 * math.sin(theta)) / total
                    alpha = (g * math.sin(theta) - math.cos(theta) * temp) / (
                        length * (4.0 / 3.0 - m * math.cos(theta) ** 2 / total)
                    )
                    acc[d] = temp - m * length * alpha * math.cos(theta) / total
                    acc[pole] = alpha
                elif not any(j.child == joint.parent and j.kind == "prismatic" for j in joints):
                    acc[d] = force / max(joint.child_mass, 1e-3)
            for d in range(len(joints)):
                row = offset + d
                state[row, 1] += h * acc[d]
                state[row, 0] += h * state[row, 1]
            offset += len(joints)

    def fetch_results(self, sim: Sim, wait: bool) -> None:
        return None

    def destroy_sim(self, sim: Sim) -> None:
        sim.envs.clear()


_GYM = Gym()


def acquire_gym(*args, **kwargs) -> Gym:
    return _GYM
