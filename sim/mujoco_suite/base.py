"""Shared MuJoCo scaffolding: model/data, fixed-rate stepping, cameras, randomisation, rewards.

A task subclasses :class:`MujocoTaskEnv` and fills in, in this order (STYLE.md habit 4):
scene (:meth:`_build_xml`), reset and randomisation (:meth:`_reset_task`), observations
(:meth:`_state_obs`, :meth:`_env_state_obs`), ``evaluate()`` returning named flags including
``success``, and reward as named terms (:meth:`_reward_terms`) times ``reward_weights``.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any

import numpy as np

from robot_learning.compat import guard_triton
from robot_learning.envs import TaskConfig, TaskEnv

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
guard_triton()  # triton loaded after OSMesa segfaults: see robot_learning.compat

import mujoco  # noqa: E402  (MUJOCO_GL must be set before the import)

#: every open renderer; closed at interpreter exit, before the GL bindings they need are torn down
#: (otherwise ``Renderer.__del__`` prints an OSMesa traceback when a script ends without close())
_OPEN_RENDERERS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_open_renderers() -> None:
    for renderer in list(_OPEN_RENDERERS):
        renderer.close()


#: the lowest MuJoCo the tasks load with (older ones reject the Panda's massless base link);
#: ``pyproject.toml`` declares it and ``scripts/check_min_mujoco.sh`` checks it
MIN_MUJOCO = (3, 3, 6)


def check_mujoco_version(version: str | None = None) -> None:
    """Refuse a MuJoCo older than :data:`MIN_MUJOCO`, naming the upgrade."""
    version = version or mujoco.__version__
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts < MIN_MUJOCO:
        need = ".".join(map(str, MIN_MUJOCO))
        raise ValueError(
            f"MuJoCo {version} is older than the {need} the MuJoCo tasks need (older releases "
            f"reject the Panda model): pip install 'mujoco>={need}'"
        )


class MujocoTaskEnv(TaskEnv):
    """Base for MuJoCo tasks: subclasses define the scene, reset, observations and rewards."""

    #: control rate in Hz (one env step = ``1 / fps`` seconds of simulation)
    fps: int = 10
    #: default episode limit in control steps
    default_max_episode_steps: int = 200
    #: cameras rendered in pixel mode when ``cfg.cameras`` is None
    default_cameras: tuple[str, ...] = ("front",)
    #: weights of the dense reward terms returned by :meth:`_reward_terms`
    reward_weights: dict[str, float] = {}
    #: geoms/bodies whose friction and mass the randomisation hooks scale (names in the MJCF)
    randomized_bodies: tuple[str, ...] = ()

    def __init__(self, cfg: TaskConfig, render_size: int = 256) -> None:
        self.cfg = cfg
        check_mujoco_version()
        self.model = mujoco.MjModel.from_xml_string(self._build_xml())
        self.data = mujoco.MjData(self.model)
        self.n_substeps = max(1, round(1.0 / (self.fps * self.model.opt.timestep)))
        self.max_episode_steps = cfg.max_episode_steps or self.default_max_episode_steps
        self.cameras = tuple(cfg.cameras) if cfg.cameras is not None else self.default_cameras
        unknown = [
            c
            for c in self.cameras
            if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, c) < 0
        ]
        if unknown:
            raise ValueError(
                f"Task {cfg.name!r} has no cameras {unknown}; it has {self._camera_names()}"
            )
        self.render_size = render_size
        self._renderers: dict[int, mujoco.Renderer] = {}
        self._nominal = {
            "geom_friction": self.model.geom_friction.copy(),
            "body_mass": self.model.body_mass.copy(),
            "body_inertia": self.model.body_inertia.copy(),
            "cam_pos": self.model.cam_pos.copy(),
            "light_diffuse": self.model.light_diffuse.copy(),
        }
        self.features = self._build_features()
        self._init_spaces()
        self._step_count = 0

    # ----------------------------------------------------------------- subclass hooks
    def _build_xml(self) -> str:
        """The MJCF scene as a string."""
        raise NotImplementedError

    def _build_features(self):
        """The task's FeatureSpec for ``self.cfg.obs`` (observation keys + ``action``)."""
        raise NotImplementedError

    def _reset_task(self, rng: np.random.Generator) -> None:
        """Place robot and objects for a new episode (randomised when cfg.randomization.object_pose)."""
        raise NotImplementedError

    def _apply_action(self, action: np.ndarray) -> None:
        """Turn one (clipped) policy action into controller targets before the substeps run."""
        raise NotImplementedError

    def _before_substep(self) -> None:
        """Optional low-level control at the physics rate (default: nothing)."""

    def _state_obs(self) -> np.ndarray:
        """``observation.state``: robot proprioception."""
        raise NotImplementedError

    def _env_state_obs(self) -> np.ndarray | None:
        """``observation.environment_state`` in state mode (None if the task has none)."""
        return None

    def evaluate(self) -> dict[str, bool]:
        """Named task flags; must include ``success``."""
        raise NotImplementedError

    def _reward_terms(self, flags: dict[str, bool]) -> dict[str, float]:
        """Dense reward terms (each weighted by ``reward_weights``)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self._randomize(self.np_random)
        self._reset_task(self.np_random)
        mujoco.mj_forward(self.model, self.data)
        self._step_count = 0
        return self._get_obs(), self._reset_info()

    def step(self, action):
        self._apply_action(self._checked_action(action))
        for _ in range(self.n_substeps):
            self._before_substep()
            mujoco.mj_step(self.model, self.data)
        return self._step_result()

    def render(self) -> np.ndarray:
        """RGB frame (render_size x render_size) from the first camera, for videos."""
        return self.render_camera(self.cameras[0], self.render_size)

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    # ----------------------------------------------------------------- helpers
    def render_camera(self, camera: str, size: int) -> np.ndarray:
        """Render ``camera`` at ``size`` x ``size`` as uint8 HWC."""
        renderer = self._renderers.get(size)
        if renderer is None:
            renderer = self._renderers[size] = mujoco.Renderer(self.model, size, size)
            _OPEN_RENDERERS.add(renderer)
        renderer.update_scene(self.data, camera=camera)
        return renderer.render().copy()

    def _get_obs(self) -> dict[str, np.ndarray]:
        obs = {"observation.state": self._state_obs().astype(np.float32)}
        if self.cfg.obs == "state":
            env_state = self._env_state_obs()
            if env_state is not None:
                obs["observation.environment_state"] = env_state.astype(np.float32)
        else:
            for cam in self.cameras:
                obs[f"observation.images.{cam}"] = self.render_camera(cam, self.cfg.image_size)
        return obs

    def _camera_names(self) -> list[str]:
        return [
            mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i)
            for i in range(self.model.ncam)
        ]

    def body_id(self, name: str) -> int:
        """Body id by name, with a clear error."""
        idx = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if idx < 0:
            raise KeyError(f"No body {name!r} in the {self.cfg.name} scene")
        return idx

    def _randomize(self, rng: np.random.Generator) -> None:
        """Domain-randomisation hooks: friction, mass, camera pose, lighting (from nominal values)."""
        r = self.cfg.randomization
        m, nom = self.model, self._nominal
        m.geom_friction[:] = nom["geom_friction"]
        m.body_mass[:] = nom["body_mass"]
        m.body_inertia[:] = nom["body_inertia"]
        m.cam_pos[:] = nom["cam_pos"]
        m.light_diffuse[:] = nom["light_diffuse"]
        body_ids = [self.body_id(b) for b in self.randomized_bodies]
        if r.friction is not None:
            for b in body_ids:
                m.geom_friction[m.geom_bodyid == b, 0] *= rng.uniform(*r.friction)
        if r.mass is not None:
            for b in body_ids:
                scale = rng.uniform(*r.mass)
                m.body_mass[b] *= scale
                m.body_inertia[b] *= scale
            # refresh mass-derived constants (body/dof invweight0 scale contact softness); stale
            # values make squeezed light objects unstable. Clobbers data, which is fresh here.
            mujoco.mj_setConst(m, self.data)
        if r.camera_pose is not None and m.ncam:
            m.cam_pos[:] += rng.uniform(-r.camera_pose, r.camera_pose, size=m.cam_pos.shape)
        if r.lighting is not None and m.nlight:
            delta = rng.uniform(-r.lighting, r.lighting, size=(m.nlight, 1))
            m.light_diffuse[:] = np.clip(nom["light_diffuse"] + delta, 0.0, 1.0)
