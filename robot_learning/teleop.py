"""Record teleoperated demonstrations and human corrections into a LeRobotDataset v3.0.

``robot-learning teleop task=<name> device=<name> out=DIR episodes=N [policy=DIR]``

One control tick: (intervention mode) the policy proposes an action -> the device reads the
operator (:class:`~hardware.teleop.base.TeleopInput`) -> the executed action is the operator's
when no policy drives or while ``intervene`` is held, else the policy's -> the simulator steps ->
the frame is buffered. Episodes are committed atomically by the dataset writer; ``rerecord``
discards the episode and records it again (same seed), ``success``/``failure`` end it with that
label, ``stop`` ends the session after the current episode.

Columns: the task's observations and ``action`` (the executed action), ``next.reward``,
``next.done``, ``next.success`` (as ``collect``), and the intervention columns of
:mod:`robot_learning.interventions` in **every** teleop dataset, so plain demonstrations and
correction runs share one schema: without a policy ``complementary_info.policy_action`` equals
``action`` and both flags are 0.

Success of an episode: the operator's label when given (``success``/``failure`` event), else the
simulator's own ``info["is_success"]`` flag; it is stored on the episode's last frame
(``next.success``, with ``next.done`` true), like ``collect``'s terminating frame.

``teleop.json`` in the dataset folder: ``episodes``, ``successes``, ``success_rate`` (over saved
episodes), ``frames``, ``interventions`` (intervention runs), ``intervention_frames``, plus
``rerecorded``, ``this_run``, ``interrupted``/``error`` and the resolved ``config``; after
``resume=true`` the counts describe the whole dataset.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_learning.collect import (
    TRANSITION_FEATURES,
    _read_json,
    _successful_episodes,
    _write_summary,
    writer_episodes,
)
from robot_learning.datasets import LeRobotDatasetWriter
from robot_learning.envs import TaskConfig, episode_instruction, make_task_env
from robot_learning.features import ACTION, FeatureSpec
from robot_learning.interventions import (
    INTERVENTION_START,
    IS_INTERVENTION,
    POLICY_ACTION,
    intervention_features,
)

log = logging.getLogger(__name__)

#: devices that are not a person: they run as fast as possible unless ``realtime=true``
SIMULATED_DEVICES = ("expert",)


@dataclass
class TeleopConfig:
    """Settings of one teleoperation session (``configs/teleop.yaml``)."""

    task: TaskConfig
    """The simulated task to record on."""
    out: str
    """Dataset directory."""
    device: str = "keyboard"
    """Registered teleop device: ``expert`` (simulated operator), ``keyboard``, ``gamepad``, ..."""
    device_options: dict[str, Any] = field(default_factory=dict)
    """Device options (``device.<key>=value`` on the command line)."""
    episodes: int = 10
    """Episodes the dataset should hold (with ``resume=true``: the total)."""
    policy: str | None = None
    """Intervention mode: a checkpoint or bundle folder whose policy drives; the operator takes over
    while holding intervene."""
    runtime: str = "auto"
    """Runtime of a bundle ``policy`` (``auto``, ``onnxruntime``, ``torch``, ...)."""
    realtime: bool | None = None
    """Pace ticks at the task's control rate; None: true for human devices, false for ``expert``."""
    seed: int = 0
    """Episode ``i`` resets with ``seed + i`` (a re-recorded episode keeps its seed)."""
    resume: bool = False
    """Append to an existing dataset in ``out``."""

    robot: dict[str, Any] | None = None
    """Record on this robot (its ``robot.*`` settings, through the robot contract and its
    safety layer) instead of the task's simulator; the task gives the features and step limit."""

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ValueError(f"episodes={self.episodes} must be positive")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed} must be >= 0 (episode i resets with seed + i)")
        if self.realtime is None:
            self.realtime = self.device not in SIMULATED_DEVICES


_COUNTS = ("episodes", "successes", "frames", "interventions", "intervention_frames", "rerecorded")


@dataclass
class TeleopResult:
    """What a session did; ``to_json`` gives the stable ``teleop.json`` keys."""

    episodes: int = 0
    successes: int = 0
    frames: int = 0
    interventions: int = 0
    intervention_frames: int = 0
    rerecorded: int = 0
    seconds: float = 0.0
    stopped: bool = False
    """The operator ended the session (``stop`` event) before ``episodes`` were saved."""
    interrupted: bool = False
    error: str | None = None
    """Why the session stopped early (``KeyboardInterrupt``, a device error, ...), or None."""
    earlier: dict[str, int] = field(default_factory=dict)
    """Totals of the dataset before this run (empty for a new dataset)."""

    def totals(self) -> dict[str, int]:
        """Counts of the whole dataset: the earlier runs' plus this run's."""
        return {k: int(self.earlier.get(k, 0)) + getattr(self, k) for k in _COUNTS}

    def to_json(self, cfg: TeleopConfig) -> dict[str, Any]:
        """The ``teleop.json`` payload (whole-dataset totals plus this run's own counts)."""
        total = self.totals()
        mine = {k: getattr(self, k) for k in _COUNTS}
        return {
            **total,
            "success_rate": total["successes"] / total["episodes"] if total["episodes"] else 0.0,
            "this_run": {
                **mine,
                "success_rate": self.successes / self.episodes if self.episodes else 0.0,
                "seconds": round(self.seconds, 3),
                "interrupted": self.interrupted,
                "error": self.error,
            },
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "interrupted": self.interrupted,
            "error": self.error,
            "config": {**asdict(cfg), "task": asdict(cfg.task)},
        }


# --------------------------------------------------------------------------- the policy
class PolicyDriver:
    """A checkpoint's or bundle's policy acting one step at a time, reproducibly per episode.

    Args:
        policy: a :class:`~robot_learning.policy.Policy` (torch) or a
            :class:`~robot_learning.runtime.BundlePolicy`; both have ``select_action``/``reset``.
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.name = policy.name
        self._torch_generator = None
        if not hasattr(policy, "bundle_dir"):
            import torch

            self._torch_generator = torch.Generator()

    def reset(self, seed: int) -> None:
        """New episode: forget history and queued actions; sampler noise restarts from ``seed``."""
        self.policy.reset()
        if self._torch_generator is not None:
            self._torch_generator.manual_seed(seed)
        else:
            self.policy.reseed(seed)

    def replan(self) -> None:
        """Drop the queued actions (keeping the observation history): the next step re-plans."""
        queue = getattr(self.policy, "_action_queue", getattr(self.policy, "_queue", None))
        if queue is None:
            self.policy.reset()
        else:
            queue.clear()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The policy's action for this tick (raw units)."""
        if self._torch_generator is None:
            return np.asarray(self.policy.select_action(obs), np.float32)
        import torch

        cfg = self.policy.config
        shape = (1, cfg.horizon, *self.policy.features[ACTION].shape)
        noise = torch.randn(shape, generator=self._torch_generator)
        return np.asarray(self.policy.select_action(obs, noise=noise), np.float32)


def load_policy(path: str, env: Any, runtime: str = "auto") -> PolicyDriver:
    """The policy in ``path`` (a bundle folder with ``policy.json``, else a checkpoint), checked
    against ``env``'s features and control rate."""
    from robot_learning.evaluation import (
        check_control_rate,
        check_task_features,
        checkpoint_control_rate,
    )

    folder = Path(path)
    if (folder / "policy.json").is_file():
        from robot_learning.runtime import load_bundle

        policy = load_bundle(folder, runtime=runtime)
        rate = policy.control_rate_hz
    else:
        from robot_learning.cli.eval import checkpoint_dir
        from robot_learning.policy import Policy

        folder = checkpoint_dir(folder)
        policy = Policy.load(folder).eval()
        rate = checkpoint_control_rate(folder)
    what = f"policy {folder} vs task {env.unwrapped.cfg.name!r}"
    check_task_features(policy.features, list(policy.input_keys), env.features, what=what)
    check_control_rate(rate, env.fps, f"policy {folder}", f"task {env.unwrapped.cfg.name!r}")
    return PolicyDriver(policy)


# --------------------------------------------------------------------------- one episode
@dataclass
class EpisodeOutcome:
    """How an episode ended."""

    frames: int = 0
    success: bool = False
    interventions: int = 0
    intervention_frames: int = 0
    rerecord: bool = False
    stop: bool = False


class _Hold:
    """The action that keeps the robot still when the operator sends none."""

    def __init__(self, features: FeatureSpec, fps: int) -> None:
        self.mapper = None
        try:
            from hardware.teleop.mapping import ActionMapper

            self.mapper = ActionMapper(features, fps)
        except ValueError:
            action = features[ACTION]
            low = np.asarray(action.low if action.low is not None else 0.0, np.float32)
            high = np.asarray(action.high if action.high is not None else 0.0, np.float32)
            self.zero = np.clip(np.zeros(action.shape, np.float32), low, high)

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.mapper.hold(obs) if self.mapper is not None else self.zero.copy()


class EpisodeRunner:
    """Runs one episode of operator (+ policy) control and buffers its frames in ``writer``."""

    def __init__(self, env, device, writer, policy: PolicyDriver | None, pacer, status) -> None:
        self.env, self.device, self.writer, self.policy = env, device, writer, policy
        self.pacer, self.status = pacer, status
        self.hold = _Hold(env.features, env.fps)

    def run(self, seed: int) -> EpisodeOutcome:
        """One episode from ``env.reset(seed)``; frames are buffered, not committed."""
        env, out = self.env, EpisodeOutcome()
        obs, info = env.reset(seed=seed)
        self.device.reset(seed=seed)
        if self.policy is not None:
            self.policy.reset(seed)
        sim_success = bool(info.get("is_success", False))
        label: bool | None = None
        pending: dict[str, Any] | None = None
        was_intervening = False
        self.pacer.start()
        while True:
            if self.policy is not None and was_intervening:
                self.policy.replan()  # the operator drove last tick: re-plan from this frame
            policy_action = self.policy.act(obs) if self.policy is not None else None
            inp = self.device.read(obs, policy_action)
            out.stop = out.stop or inp.stop
            if inp.rerecord:
                out.rerecord = True
                return out
            if inp.success or inp.failure:
                label = bool(inp.success)
                break
            intervening = self.policy is not None and bool(inp.intervene)
            operator = inp.action if inp.action is not None else self.hold(obs)
            action = np.asarray(operator if self.policy is None or intervening else policy_action)
            action = action.astype(np.float32)
            next_obs, reward, terminated, truncated, info = env.step(action)
            step_success = bool(info.get("is_success", False))
            sim_success = sim_success or step_success
            done = bool(terminated or truncated)
            if pending is not None:
                self.writer.add_frame(pending, task=episode_instruction(env))
            started = intervening and not was_intervening
            pending = {
                **obs,
                ACTION: action,
                "next.reward": np.array([reward], np.float32),
                "next.done": np.array([done]),
                "next.success": np.array([step_success]),
                POLICY_ACTION: np.asarray(
                    policy_action if policy_action is not None else action, np.float32
                ),
                IS_INTERVENTION: np.array([float(intervening)], np.float32),
                INTERVENTION_START: np.array([float(started)], np.float32),
            }
            out.frames += 1
            out.interventions += int(started)
            out.intervention_frames += int(intervening)
            was_intervening = intervening
            obs = next_obs
            self.status(step=out.frames, success=sim_success, episode_interventions=out)
            self.device.show(obs, {"step": out.frames, "success": sim_success})
            if done:
                break
            self.pacer.wait()
        out.success = label if label is not None else sim_success
        if pending is not None:  # the last frame ends the episode and carries its label
            pending["next.done"] = np.array([True])
            pending["next.success"] = np.array([out.success])
            self.writer.add_frame(pending, task=episode_instruction(env))
        return out


class Pacer:
    """Sleeps so that ticks follow the control rate (a no-op when not ``realtime``)."""

    def __init__(self, fps: int, realtime: bool) -> None:
        self.period, self.realtime = 1.0 / fps, realtime
        self._next = 0.0

    def start(self) -> None:
        """The episode's first tick is now."""
        self._next = time.perf_counter() + self.period

    def wait(self) -> None:
        """Until the next tick (never sleeps to catch up on a late tick)."""
        if not self.realtime:
            return
        delay = self._next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + self.period, time.perf_counter())


class StatusLine:
    """One live line: episode, step, success, interventions (rich; silent when disabled)."""

    def __init__(self, enabled: bool, target: int) -> None:
        self.enabled, self.target = enabled, target
        self.live = None
        self.fields: dict[str, Any] = {"episode": 0, "saved": 0, "step": 0, "success": False}
        self.runs = self.frames = 0

    def __enter__(self) -> StatusLine:
        if self.enabled:
            from rich.live import Live

            self.live = Live(self._text(), refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            if not self.live.console.is_terminal:  # rich leaves a non-terminal line unterminated
                self.live.console.print()

    def __call__(self, episode_interventions: EpisodeOutcome | None = None, **values: Any) -> None:
        """Update fields; ``episode_interventions`` adds the running episode's counts."""
        self.fields.update(values)
        if episode_interventions is not None:
            self.fields["ep_runs"] = episode_interventions.interventions
            self.fields["ep_frames"] = episode_interventions.intervention_frames
        if self.live is not None:
            self.live.update(self._text())

    def _text(self) -> str:
        f = self.fields
        runs = self.runs + f.get("ep_runs", 0)
        frames = self.frames + f.get("ep_frames", 0)
        return (
            f"teleop episode {f['episode']} (saved {f['saved']}/{self.target})  step {f['step']}  "
            f"success {'yes' if f['success'] else 'no'}  interventions {runs} ({frames} frames)"
        )


# --------------------------------------------------------------------------- the session
def teleop(cfg: TeleopConfig, progress: bool = True) -> TeleopResult:
    """Record until ``cfg.out`` holds ``cfg.episodes`` episodes (or ``stop``); returns the counts.

    A device error or Ctrl-C keeps every committed episode and is recorded in ``teleop.json``
    (``interrupted``, ``error``), then re-raised.
    """
    import hardware.teleop.expert  # noqa: F401  (registers device=expert without other plugins)
    from hardware.teleop.base import TeleopContext, make_device

    env = make_task_env(cfg.task, cfg.robot)
    result, writer, device = TeleopResult(), None, None
    start = time.perf_counter()
    try:
        policy = load_policy(cfg.policy, env, cfg.runtime) if cfg.policy else None
        context = TeleopContext(env.features, env.fps, env, dict(cfg.device_options))
        device = make_device(cfg.device, context)
        device.connect()  # before the dataset exists: a device that cannot start leaves nothing
        features = env.features.merge(TRANSITION_FEATURES).merge(
            intervention_features(env.features)
        )
        writer = LeRobotDatasetWriter.create(
            cfg.out, features, fps=env.fps, robot_type=env.unwrapped.robot_type, resume=cfg.resume
        )
        result.earlier = _earlier_totals(Path(cfg.out), writer) if cfg.resume else {}
        _session(cfg, env, device, writer, policy, result, progress)
    except KeyboardInterrupt:
        result.interrupted, result.error = True, "KeyboardInterrupt"
        log.warning(
            "interrupted: kept %d committed episodes in %s", writer_episodes(writer), cfg.out
        )
    except BaseException as exc:
        result.interrupted, result.error = True, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if device is not None:
            device.disconnect()
        if writer is not None:
            writer.close()
        env.close()
        result.seconds = time.perf_counter() - start
        if writer is not None:
            _write_summary(Path(cfg.out) / "teleop.json", result.to_json(cfg))
    return result


def _session(cfg, env, device, writer, policy, result: TeleopResult, progress: bool) -> None:
    wanted = cfg.episodes - writer.num_episodes
    if wanted <= 0:
        log.warning(
            "%s already holds %d episodes (episodes=%d is the dataset's size); nothing to record",
            cfg.out,
            writer.num_episodes,
            cfg.episodes,
        )
        return
    first_seed = cfg.seed + writer.num_episodes
    pacer = Pacer(env.fps, bool(cfg.realtime))
    with StatusLine(progress, cfg.episodes) as status:
        runner = EpisodeRunner(env, device, writer, policy, pacer, status)
        while result.episodes < wanted:
            seed = first_seed + result.episodes
            status(episode=writer.num_episodes, saved=writer.num_episodes, step=0, success=False)
            outcome = runner.run(seed)
            if outcome.rerecord or outcome.frames == 0:
                writer.discard_episode()
                result.rerecorded += int(outcome.rerecord)
                log.info("episode with seed %d discarded; recording it again", seed)
            else:
                writer.save_episode()
                _count(result, outcome)
                status.runs, status.frames = result.interventions, result.intervention_frames
            status(saved=writer.num_episodes, episode_interventions=EpisodeOutcome())
            if outcome.stop and result.episodes < wanted:
                result.stopped = True
                log.info("stop requested: ending the session after %d episodes", result.episodes)
                return


def _count(result: TeleopResult, outcome: EpisodeOutcome) -> None:
    result.episodes += 1
    result.successes += int(outcome.success)
    result.frames += outcome.frames
    result.interventions += outcome.interventions
    result.intervention_frames += outcome.intervention_frames


def _earlier_totals(root: Path, writer) -> dict[str, int]:
    """The dataset's counts before this run: episodes/frames from the data, the rest from the
    previous ``teleop.json`` when it describes this dataset, else from the data's columns."""
    totals = {"episodes": writer.num_episodes, "frames": writer.num_frames}
    previous = _read_json(root / "teleop.json")
    if previous.get("episodes") == writer.num_episodes:
        for key in ("successes", "interventions", "intervention_frames", "rerecorded"):
            totals[key] = int(previous.get(key, 0))
        return totals
    totals["successes"] = _successful_episodes(root)
    totals.update(_intervention_counts(root))
    return totals


def _intervention_counts(root: Path) -> dict[str, int]:
    """``interventions`` and ``intervention_frames`` of the committed data (0 without the columns)."""
    from robot_learning.datasets import LeRobotDataset

    dataset = LeRobotDataset(root)
    if IS_INTERVENTION not in dataset.features:
        return {"interventions": 0, "intervention_frames": 0}
    cols = dataset.columns([IS_INTERVENTION, INTERVENTION_START])
    return {
        "interventions": int(np.sum(cols[INTERVENTION_START])),
        "intervention_frames": int(np.sum(cols[IS_INTERVENTION])),
    }
