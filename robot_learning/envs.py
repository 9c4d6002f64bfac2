"""The environment contract shared by simulated tasks and (later) real robots.

Every task is a gymnasium ``Env`` with dict observations keyed by LeRobot names, a
:class:`~robot_learning.features.FeatureSpec` describing observations and action, a fixed
control rate ``fps``, seeded resets, ``info["is_success"]`` on every step and a
``task_state()`` dict of privileged named quantities that scripted experts read (so one expert
serves every backend of a task).

Tasks register with :func:`register_task` under ``(backend, name)``; experts with
:func:`register_expert` under the task name. :func:`make_env` and :func:`make_expert` are the
only constructors the rest of the stack uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from robot_learning.features import ACTION, CONTROL_MODES, FeatureSpec
from robot_learning.language import (
    PARAPHRASE_POOLS,
    Instructions,
    check_instruction,
    choose_instruction,
    goal_of,
    language_rng,
)
from robot_learning.registry import Registry

OBS_MODES = ("state", "pixels")
REWARD_MODES = ("dense", "sparse")


@dataclass
class RandomizationConfig:
    """Domain-randomisation hooks applied at every reset (``None`` disables a hook)."""

    object_pose: bool = True
    """Randomise the initial object/target poses within the task's ranges (the seeded initial state)."""
    friction: tuple[float, float] | None = None
    """Multiply object friction by a factor drawn uniformly from this range, e.g. ``(0.7, 1.3)``."""
    mass: tuple[float, float] | None = None
    """Multiply object mass by a factor drawn uniformly from this range."""
    camera_pose: float | None = None
    """Perturb camera positions by up to this many metres per axis."""
    lighting: float | None = None
    """Perturb light diffuse intensity by up to this amount (0-1 scale)."""

    def __post_init__(self) -> None:
        for name in ("friction", "mass"):
            value = getattr(self, name)
            if value is not None:
                lo, hi = (float(v) for v in value)
                if not 0 < lo <= hi:
                    raise ValueError(
                        f"randomization.{name} must be a range 0 < low <= high, got {value}"
                    )
                setattr(self, name, (lo, hi))
        for name in ("camera_pose", "lighting"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"randomization.{name} must be >= 0, got {value}")


#: settings of the adapters and their defaults (a task of another backend must leave them)
ADAPTER_ONLY: dict[str, Any] = {
    "gym_id": None,
    "gym_kwargs": {},
    "fps": None,
    "success_key": None,
    "terminate_on_success": True,
    "control_mode": None,
    "reseed": False,
    "vec_task": None,
    "vec_task_cfg": {},
    "sim_device": "cpu",
}
#: the backends each adapter setting applies to
ADAPTER_BACKENDS: dict[str, tuple[str, ...]] = {
    **{k: ("gymnasium",) for k in ADAPTER_ONLY},
    **{k: ("gymnasium", "isaacgym") for k in ("success_key", "control_mode")},
    **{k: ("isaacgym",) for k in ("vec_task", "vec_task_cfg", "sim_device")},
}


@dataclass
class TaskConfig:
    """Which task to build and how; the CLI and Hydra YAML in ``configs/task/`` fill it."""

    name: str
    """Registered task name, e.g. ``lift``, ``pusht``, or an external adapter such as ``hopper``."""
    backend: str = "mujoco"
    """Simulator backend: ``mujoco`` (default), ``pybullet``, ``gymnasium`` for external suites,
    or ``isaacgym`` for Isaac Gym vectorised tasks (``sim/isaacgym``)."""
    obs: str = "state"
    """Observation mode: ``state`` (proprio + object state) or ``pixels`` (proprio + cameras)."""
    image_size: int = 96
    """Square camera resolution in pixels (height = width) for ``obs=pixels``."""
    cameras: tuple[str, ...] | None = None
    """Cameras to render in pixel mode; ``None`` means the task's default cameras."""
    reward: str = "dense"
    """``dense`` (shaped) or ``sparse`` (1 on success, else 0)."""
    max_episode_steps: int | None = None
    """Episode limit in control steps; ``None`` means the task's default."""
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    """Domain-randomisation hooks."""
    gym_id: str | None = None
    """For ``backend=gymnasium``: the gymnasium id to wrap, e.g. ``Hopper-v5``."""
    gym_kwargs: dict[str, Any] = field(default_factory=dict)
    """For ``backend=gymnasium``: keyword arguments passed to ``gymnasium.make``."""
    fps: int | None = None
    """For ``backend=gymnasium``: control rate to record; ``None`` reads the env's metadata."""
    success_key: str | None = None
    """For ``backend=gymnasium``: the ``info`` key that reports success; None: ``is_success``,
    else ``success`` (a warning names the keys seen when neither appears). For
    ``backend=isaacgym``: the ``extras`` key (per-env tensor; None: ``successes``)."""
    terminate_on_success: bool = True
    """For ``backend=gymnasium``: end the episode at the first success, as the project's own
    tasks do (false: run to the suite's own end or the step limit)."""
    control_mode: str | None = None
    """For ``backend=gymnasium|isaacgym``: what the action means (``joint_torque``,
    ``ee_delta_pos``, ..., see ``robot_learning.features.CONTROL_MODES``); None: not declared."""
    vec_task: str | None = None
    """For ``backend=isaacgym``: the ``VecTask`` class, a name registered in ``sim.isaacgym``
    (``cartpole``) or ``module:Class`` (e.g. ``isaacgymenvs.tasks.cartpole:Cartpole``)."""
    vec_task_cfg: dict[str, Any] = field(default_factory=dict)
    """For ``backend=isaacgym``: overrides merged into the task's IsaacGymEnvs-style config
    (``env:``, ``sim:``, ``task:`` sections; ``env.numEnvs`` is set by the caller)."""
    sim_device: str = "cpu"
    """For ``backend=isaacgym``: the device that simulates and holds the tensors (``cuda:0``)."""
    reseed: bool = False
    """For ``backend=gymnasium``: seed the suite's random generators before every reset, for
    suites whose ``reset(seed=...)`` ignores the seed (the adapter warns when it sees one)."""
    hold_action: dict[str, float] = field(default_factory=dict)
    """Action elements held at a fixed value whatever the policy sends, by element name, e.g.
    ``{gripper: 1.0}`` keeps an arm's gripper closed (HIL-SERL's insertion setups). The action
    keeps its shape; the held elements are overwritten before the simulator sees them."""
    instruction: str | None = None
    """Fix every episode's language instruction to this text (the task's goal follows from it,
    e.g. ``"lift the blue cube"`` on ``lift_color``); None: drawn per episode from the pool of
    ``paraphrases``."""
    paraphrases: str = "train"
    """Pool of each episode's instruction: ``train`` (collection and training), ``heldout``
    (paraphrases never trained on, for evaluation), ``all``, or ``canonical`` (the first only)."""
    env_state_slots: int | None = None
    """Arm tasks in state mode: lay ``observation.environment_state`` out as this many xyz slots
    (``slot0_x`` ... , the task's objects first, zeros after), so that tasks of the suite share
    one feature spec and their datasets train one multi-task policy. None: the task's own
    names (``cube_x``, ...)."""

    def __post_init__(self) -> None:
        if self.obs not in OBS_MODES:
            raise ValueError(f"task obs={self.obs!r} is invalid; use one of {OBS_MODES}")
        if self.reward not in REWARD_MODES:
            raise ValueError(f"task reward={self.reward!r} is invalid; use one of {REWARD_MODES}")
        if self.image_size < 8:
            raise ValueError(f"task image_size={self.image_size} is too small; use >= 8 pixels")
        if self.max_episode_steps is not None and self.max_episode_steps <= 0:
            raise ValueError(f"task max_episode_steps={self.max_episode_steps} must be positive")
        if isinstance(self.randomization, dict):
            self.randomization = RandomizationConfig(**self.randomization)
        if self.paraphrases not in PARAPHRASE_POOLS:
            raise ValueError(
                f"task paraphrases={self.paraphrases!r} is invalid; use one of {PARAPHRASE_POOLS}"
            )
        if self.instruction is not None:
            self.instruction = check_instruction(self.instruction)
        if self.env_state_slots is not None and self.env_state_slots < 1:
            raise ValueError(
                f"task env_state_slots={self.env_state_slots} must be >= 1 (xyz slots), or null "
                "for the task's own environment-state layout"
            )
        if self.cameras is not None:
            self.cameras = tuple(self.cameras)
        if self.backend == "gymnasium" and not self.gym_id:
            raise ValueError("task backend=gymnasium needs gym_id (e.g. gym_id=Hopper-v5)")
        if self.backend == "isaacgym" and not self.vec_task:
            raise ValueError(
                "task backend=isaacgym needs vec_task (e.g. vec_task=cartpole, or "
                "vec_task=isaacgymenvs.tasks.cartpole:Cartpole)"
            )
        if self.control_mode is not None and self.control_mode not in CONTROL_MODES:
            raise ValueError(
                f"task control_mode={self.control_mode!r} is invalid; use one of {CONTROL_MODES}"
            )
        for key, default in ADAPTER_ONLY.items():
            allowed = ADAPTER_BACKENDS[key]
            if self.backend not in allowed and getattr(self, key) != default:
                wrong = [
                    k
                    for k, d in ADAPTER_ONLY.items()
                    if self.backend not in ADAPTER_BACKENDS[k] and getattr(self, k) != d
                ]
                raise ValueError(
                    f"task.{key} applies to backend={'|'.join(allowed)} only; task "
                    f"{self.name!r} runs on backend={self.backend}: remove "
                    + ", ".join(f"task.{k}" for k in wrong)
                )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskConfig:
        """Build from a plain dict (e.g. a resolved Hydra config); unknown keys and values of the
        wrong type are a ``ConfigError`` (a ``ValueError``) naming the ``task.<key>``."""
        from robot_learning.config import build  # config imports this module

        return build(cls, dict(data), where="task", prefix="task.")


class TaskEnv(gym.Env):
    """Base class of every task: declares the contract on top of ``gymnasium.Env``.

    Subclasses set ``self.cfg``, ``self.features`` (observation keys + ``action``), ``self.fps``
    and ``self.task_description``, then call :meth:`_init_spaces`. Every reset picks the
    episode's ``goal`` and language ``instruction`` (:mod:`robot_learning.language`) before the
    subclass places its objects.
    """

    metadata = {"render_modes": ["rgb_array"]}
    #: robot model name recorded in datasets (``meta/info.json`` robot_type); None if no robot
    robot_type: str | None = None
    cfg: TaskConfig
    features: FeatureSpec
    fps: int
    task_description: str
    #: paraphrases of a single-goal task (None: ``task_description`` alone)
    instructions: Instructions | None = None
    #: goal name -> paraphrases, for shared-scene tasks where only the instruction tells the goal
    goals: dict[str, Instructions] | None = None
    #: goal name -> the word naming it in free text (``task.instruction`` not among the paraphrases)
    goal_keywords: dict[str, str] = {}
    #: this episode's goal and instruction (set at every reset)
    goal: str = "default"
    instruction: str = ""

    def language_goals(self) -> dict[str, Instructions]:
        """Goal name -> its paraphrases (one goal, ``default``, for most tasks)."""
        if self.goals:
            return self.goals
        return {"default": self.instructions or Instructions((self.task_description,))}

    def check_language(self) -> None:
        """Fail now (not at the first reset) when ``task.instruction`` names no goal of the task."""
        if self.cfg.instruction is not None:
            goal_of(self.language_goals(), self.cfg.instruction, self.goal_keywords)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Seed ``np_random`` (gymnasium) and pick this episode's goal and instruction from a
        generator of their own, so the objects' random stream does not depend on language."""
        super().reset(seed=seed, options=options)
        self._language_rng = language_rng(seed, getattr(self, "_language_rng", None))
        goals = self.language_goals()
        if self.cfg.instruction is not None:
            self.goal = goal_of(goals, self.cfg.instruction, self.goal_keywords)
            self.instruction = self.cfg.instruction
        else:
            self.goal, self.instruction = choose_instruction(
                goals, self.cfg.paraphrases, self._language_rng
            )

    def _init_spaces(self) -> None:
        """Derive gymnasium spaces from ``self.features``."""
        self.observation_space = spaces_from_spec(
            self.features.select(self.features.observation_keys)
        )
        act = self.features.action
        self.action_space = gym.spaces.Box(
            low=np.asarray(act.low, dtype=np.float32).reshape(act.shape),
            high=np.asarray(act.high, dtype=np.float32).reshape(act.shape),
            dtype=np.float32,
        )

    def task_state(self) -> dict[str, np.ndarray]:
        """Privileged named quantities for scripted experts (never part of the policy input)."""
        raise NotImplementedError

    # Shared step bookkeeping for simulated tasks. Subclasses provide ``evaluate()`` (named
    # flags incl. ``success``), ``_reward_terms(flags)``, ``reward_weights``, ``_get_obs()``,
    # ``_step_count`` and ``max_episode_steps``.
    reward_weights: dict[str, float] = {}

    def _checked_action(self, action) -> np.ndarray:
        """The action as float32 clipped to the bounds; wrong shape or NaN/Inf is an error."""
        action = np.asarray(action, dtype=np.float32)
        expected = self.features[ACTION].shape
        if action.shape != expected:
            raise ValueError(
                f"{self.cfg.name}: action must have shape {expected}, got {action.shape}"
            )
        if not np.all(np.isfinite(action)):
            raise ValueError(f"{self.cfg.name}: action contains NaN/Inf: {action}")
        action = np.clip(action, self.action_space.low, self.action_space.high)
        for index, value in self._held_action().items():
            action[index] = value
        return action

    def _held_action(self) -> dict[int, float]:
        """``cfg.hold_action`` as {action index: value}, checked against the action's names and
        bounds once per env (a name the task does not have is an error listing the names)."""
        held = getattr(self, "_held_action_cache", None)
        if held is None:
            held = held_action_indices(self.cfg, self.features)
            self._held_action_cache = held
        return held

    def _reset_info(self) -> dict[str, Any]:
        """``info`` of ``reset()``: success and the named flags."""
        flags = self.evaluate()
        return {"is_success": bool(flags["success"]), **{f"flag/{k}": v for k, v in flags.items()}}

    def _step_result(self):
        """The gymnasium 5-tuple after the physics advanced one control step.

        Reward is the weighted sum of the named terms (``dense``) or 1 on success (``sparse``);
        success terminates, the episode limit truncates; ``info`` carries ``is_success``,
        ``flag/<name>`` and ``reward/<term>``.
        """
        self._step_count += 1
        flags = self.evaluate()
        success = bool(flags["success"])
        terms = self._reward_terms(flags)
        if self.cfg.reward == "sparse":
            reward = float(success)
        else:
            reward = float(sum(self.reward_weights.get(k, 1.0) * v for k, v in terms.items()))
        truncated = self._step_count >= self.max_episode_steps and not success
        info = {
            "is_success": success,
            **{f"flag/{k}": v for k, v in flags.items()},
            **{f"reward/{k}": float(v) for k, v in terms.items()},
        }
        return self._get_obs(), reward, success, truncated, info


def held_action_indices(cfg: TaskConfig, features: FeatureSpec) -> dict[int, float]:
    """Map ``cfg.hold_action`` ({element name: value}) to action indices; unknown names, a task
    whose action has no element names, and values outside the bounds are errors."""
    if not cfg.hold_action:
        return {}
    act = features[ACTION]
    names = list(act.names or ())
    if len(act.shape) != 1 or len(names) != act.shape[0]:
        raise ValueError(
            f"task {cfg.name!r}: task.hold_action needs named action elements; this task's "
            "action has none. Remove task.hold_action."
        )
    out = {}
    for name, value in cfg.hold_action.items():
        if name not in names:
            raise ValueError(
                f"task.hold_action.{name}: {cfg.name!r} has no action element {name!r}; "
                f"its action elements are {names}"
            )
        i = names.index(name)
        if act.low is not None and not act.low[i] <= float(value) <= act.high[i]:
            raise ValueError(
                f"task.hold_action.{name}={value} is outside the action bounds "
                f"[{act.low[i]}, {act.high[i]}]"
            )
        out[i] = float(value)
    return out


def spaces_from_spec(spec: FeatureSpec) -> gym.spaces.Dict:
    """A gymnasium ``Dict`` space with one ``Box`` per feature."""
    out = {}
    for key, feat in spec.items():
        if feat.is_image:
            out[key] = gym.spaces.Box(0, 255, shape=feat.shape, dtype=np.uint8)
        else:
            low = np.asarray(feat.low, np.float32).reshape(feat.shape) if feat.low else -np.inf
            high = np.asarray(feat.high, np.float32).reshape(feat.shape) if feat.high else np.inf
            out[key] = gym.spaces.Box(low, high, shape=feat.shape, dtype=feat.numpy_dtype)
    return gym.spaces.Dict(out)


class Expert(Protocol):
    """A scripted demonstrator: reads ``env.unwrapped.task_state()``, returns one action."""

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


TASKS: Registry[type[TaskEnv]] = Registry(
    "task", discover=("sim",), entry_points="robot_learning.tasks"
)
EXPERTS: Registry[type] = Registry(
    "expert", discover=("sim",), entry_points="robot_learning.experts"
)


def register_task(name: str, backend: str = "mujoco"):
    """Class decorator registering a :class:`TaskEnv` subclass as ``backend/name``."""
    return TASKS.register(f"{backend}/{name}")


def register_expert(task: str):
    """Class decorator registering a scripted expert for ``task`` (any backend)."""
    return EXPERTS.register(task)


def task_names(backend: str | None = None) -> list[str]:
    """Registered task names, optionally for one backend only."""
    keys = TASKS.names()
    return sorted(
        {k.split("/", 1)[1] for k in keys if backend is None or k.startswith(backend + "/")}
    )


#: backends whose tasks are all one adapter class, configured by the task's settings
ADAPTER_KEYS = {"gymnasium": "gymnasium/adapter", "isaacgym": "isaacgym/adapter"}


def task_key(cfg: TaskConfig) -> str:
    """The registry key of ``cfg``'s task class (``backend/name``, or the backend's adapter)."""
    return ADAPTER_KEYS.get(cfg.backend, f"{cfg.backend}/{cfg.name}")


def make_envs(cfg: TaskConfig, n: int) -> list[TaskEnv]:
    """``n`` environments of ``cfg``: views of one batched simulator when the task class has a
    ``make_batch(cfg, n)`` hook (Isaac Gym; step them together with
    :func:`robot_learning.env_threads.step_envs`), else ``n`` independent ones."""
    key = task_key(cfg)
    make_batch = getattr(TASKS.get(key), "make_batch", None) if key in TASKS else None
    if make_batch is None or n == 1:
        return [make_env(cfg) for _ in range(n)]
    return [_checked(env, cfg) for env in make_batch(cfg, n)]


def make_env(cfg: TaskConfig | str, **overrides: Any) -> TaskEnv:
    """Build the environment for ``cfg`` (or a task name plus keyword overrides)."""
    if isinstance(cfg, str):
        cfg = TaskConfig(name=cfg, **overrides)
    elif overrides:
        cfg = TaskConfig.from_dict(
            {**{f.name: getattr(cfg, f.name) for f in fields(cfg)}, **overrides}
        )
    key = task_key(cfg)
    if key not in TASKS:
        available = [k for k in TASKS.names() if k.endswith("/" + cfg.name)]
        hint = (
            f" It exists for backends {[k.split('/')[0] for k in available]}." if available else ""
        )
        raise ValueError(
            f"No task {cfg.name!r} for backend {cfg.backend!r}.{hint} Known tasks: {TASKS.names()}"
        )
    return _checked(TASKS.get(key)(cfg), cfg)


def _checked(env: TaskEnv, cfg: TaskConfig) -> TaskEnv:
    """``env`` after the checks every new environment passes."""
    missing = [k for k in env.features if k != ACTION and not k.startswith("observation.")]
    if missing:
        raise ValueError(f"Task {cfg.name!r} declares non-LeRobot feature keys {missing}")
    env._held_action()  # a wrong task.hold_action fails here, not at the first step
    env.check_language()  # and a task.instruction that names no goal of the task
    return env


def episode_instruction(env: Any) -> str:
    """The language instruction of ``env``'s current episode (its task description when it has
    none, e.g. a robot without a task); datasets store it as the frame's ``task`` string."""
    inner = getattr(env, "unwrapped", env)
    return getattr(inner, "instruction", "") or inner.task_description


def make_task_env(cfg: TaskConfig, robot: dict[str, Any] | None = None):
    """``cfg``'s simulator, or with ``robot`` settings (``robot.*`` of a command) that robot as an
    env with the task's features and step limit (:class:`hardware.robot_env.RobotEnv`, connected,
    behind its safety layer)."""
    if robot is None:
        return make_env(cfg)
    from hardware.build import robot_config
    from hardware.robot_env import RobotEnv

    return RobotEnv.for_task(robot_config(robot), cfg)


def make_expert(env: TaskEnv, name: str | None = None) -> Expert:
    """The scripted expert registered for ``env``'s task, or the expert registered as ``name``."""
    key = name or env.unwrapped.cfg.name
    if key not in EXPERTS:
        what = f"expert {name!r}" if name else f"scripted expert for task {key!r}"
        raise ValueError(
            f"No {what}; experts exist for {EXPERTS.names()} (a package adds one through the "
            "robot_learning.experts entry point group)"
        )
    return EXPERTS.get(key)(env)
