"""``robot-learning eval``: roll out a checkpoint or an exported bundle on a task, write eval.json (+ videos)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from robot_learning.cli import COMMANDS
from robot_learning.config import (
    TASK_SHORTHANDS,
    ConfigError,
    build,
    check_types,
    check_values,
    load_config,
    reject_unknown,
    task_config,
    to_container,
)
from robot_learning.envs import TaskConfig
from robot_learning.ray_rollouts import check_worker_settings

#: runtimes for checkpoints; bundles take any registered runtime (robot_learning.runtime)
CHECKPOINT_RUNTIMES = ("torch",)

#: keys of configs/eval.yaml that fill EvalConfig
EVAL_KEYS = (
    "episodes",
    "num_envs",
    "env_threads",
    "seed",
    "video_episodes",
    "num_workers",
    "cluster",
)

#: types of the other keys of configs/eval.yaml (``task`` is built separately)
CLI_TYPES = {
    "backend": str | None,
    "obs": str | None,
    "instruction": str | None,
    "checkpoint": str | None,
    "bundle": str | None,
    "runtime": str | None,
    "device": str,
    "threads": int | None,
    "video": bool,
    "out": str | None,
}


@COMMANDS.register("eval")
def eval_command(args: list[str]) -> int:
    """Evaluate ``checkpoint=DIR`` or ``bundle=DIR`` on ``task=<name>``; eval.json goes to ``out`` or that folder."""
    from robot_learning.cli.train import resolve_task
    from robot_learning.collect import write_json
    from robot_learning.evaluation import EvalConfig, evaluate

    cfg = load_config("eval", args)
    data = to_container(cfg)
    reject_unknown(data, [*CLI_TYPES, *EVAL_KEYS, "task", "robot"], where="eval")
    robot = data.pop("robot", None)
    data.update(check_types({k: data[k] for k in CLI_TYPES}, CLI_TYPES))
    check_values(EvalConfig, {k: data[k] for k in EVAL_KEYS}, where="eval")
    if data["threads"] is not None and data["threads"] < 1:
        raise ConfigError(
            f"threads={data['threads']} must be >= 1 (or null for the runtime's default)"
        )
    if (data["bundle"] is None) == (data["checkpoint"] is None):
        raise ConfigError(
            "eval needs exactly one of checkpoint=DIR (a training checkpoint) or bundle=DIR (an export)"
        )
    try:
        check_worker_settings(data["num_workers"], data["cluster"], robot=robot)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    source, folder, recorded_task, extra = policy_source(data)
    if "task" in data:
        task = resolve_task(task_config(cfg), source.features, args)
    else:
        task = resolve_task(_recorded_task(recorded_task, folder, data), source.features, args)
    out = Path(data["out"]) if data["out"] is not None else folder
    settings = {k: data[k] for k in EVAL_KEYS}
    if not data["video"]:
        settings["video_episodes"] = 0
    envs = None
    if robot is not None:
        settings["num_envs"] = settings["env_threads"] = 1  # one robot
        if data["video"]:
            raise ConfigError("video=true records simulator renders; a robot=... has none")
    run = build(EvalConfig, {**settings, "task": task}, where="eval")
    source.reseed(run.seed)
    if run.num_workers is not None:  # each Ray worker loads its own copy of the policy
        from robot_learning.ray_rollouts import evaluate_on_workers

        result = evaluate_on_workers({k: data[k] for k in SOURCE_KEYS}, run, progress=True)
        extra = {**extra, "num_workers": run.num_workers}
    else:
        if robot is not None:
            envs = [_robot_env(robot, task, run.seed)]
        result = evaluate(source, run, video_dir=out / "videos", progress=True, envs=envs)
    payload = result.to_json(source, run, extra=extra)
    write_json(out / "eval.json", payload)
    low, high = payload["success_ci95"]
    Console().print(
        f"[bold]eval[/] {source.name} ({source.runtime}) on {task.name}/{task.backend}/{task.obs}: success "
        f"{payload['success_rate']:.1%} (95% CI {low:.1%}-{high:.1%}) over {payload['episodes']} episodes, "
        f"mean max reward {payload['mean_max_reward']:.3f}, mean return {payload['mean_return']:.3f}, "
        f"mean length {payload['mean_episode_length']:.1f}; "
        f"wrote {out / 'eval.json'}"
        + (f" and {len(result.videos)} videos" if result.videos else "")
    )
    return 0


#: the settings that load the evaluated policy (what a Ray eval worker needs)
SOURCE_KEYS = ("checkpoint", "bundle", "runtime", "device", "threads")


def policy_source(data: dict) -> tuple[Any, Path, dict | None, dict]:
    """The action source of ``data``'s ``checkpoint=`` or ``bundle=`` (see :data:`SOURCE_KEYS`),
    its folder, the task recorded with it and the extra ``eval.json`` entries."""
    if data["bundle"] is not None:
        return _bundle_source(data)
    return _checkpoint_source(data)


def _robot_env(robot: dict, task: TaskConfig, seed: int):
    """``robot=<name>`` as the evaluation env (episodes seeded like eval where it can be)."""
    from hardware.build import robot_config
    from hardware.robot_env import RobotEnv

    return RobotEnv.for_task(robot_config(robot).seeded(seed), task)


def _checkpoint_source(data: dict) -> tuple[Any, Path, dict | None, dict]:
    from robot_learning.evaluation import TorchPolicySource, checkpoint_control_rate
    from robot_learning.policy import Policy

    runtime = data["runtime"] or "torch"
    if runtime not in CHECKPOINT_RUNTIMES:
        raise ConfigError(
            f"runtime={runtime!r} runs exported bundles; export first (robot-learning export checkpoint=DIR out=BUNDLE) "
            f"and evaluate bundle=BUNDLE, or use runtime=torch for a checkpoint"
        )
    if data["threads"] is not None:
        import torch

        torch.set_num_threads(int(data["threads"]))
    checkpoint = checkpoint_dir(data["checkpoint"])
    policy = Policy.load(checkpoint, map_location=data["device"]).to(data["device"])
    if not policy.predicts_actions:
        raise ConfigError(
            f"{checkpoint} holds a {policy.name!r} model, which predicts no actions and cannot be "
            "rolled out; its held-out metrics are in classifier.json next to it"
        )
    meta = json.loads((checkpoint / "config.json").read_text())
    extra = {
        "checkpoint": str(checkpoint.resolve()),
        "step": meta.get("step"),
        "policy_config": meta.get("config"),
    }
    return (
        TorchPolicySource(policy, control_rate_hz=checkpoint_control_rate(checkpoint)),
        checkpoint,
        (meta.get("train_config") or {}).get("task"),
        extra,
    )


def _bundle_source(data: dict) -> tuple[Any, Path, dict | None, dict]:
    from robot_learning.runtime import load_bundle

    bundle = Path(data["bundle"])
    policy = load_bundle(bundle, runtime=data["runtime"] or "auto", threads=data["threads"])
    spec = policy.spec
    extra = {
        "bundle": str(bundle.resolve()),
        "device": policy.backend.device,
        "sampler": spec["sampler"],
        "source": spec["source"],
        "policy_config": spec.get("policy_config"),
    }
    return policy, bundle, spec.get("task"), extra


def checkpoint_dir(path: str | Path) -> Path:
    """``path`` if it is a policy checkpoint, else an error suggesting the checkpoint inside it."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    hints = [
        p
        for p in (path / "final", path / "checkpoints" / "last", path / "train" / "final")
        if (p / "config.json").is_file()
    ]
    hint = f"; did you mean checkpoint={hints[0]}?" if hints else ""
    raise FileNotFoundError(f"{path} is not a policy checkpoint (no config.json){hint}")


def _recorded_task(task: dict | None, folder: Path, data: dict) -> TaskConfig:
    """The task recorded at training (with backend/obs shorthands applied)."""
    if not task:
        raise ConfigError(f"{folder} records no training task; pass task=<name>")
    task = {**task, **{k: data[k] for k in TASK_SHORTHANDS if data.get(k) is not None}}
    try:
        return TaskConfig.from_dict(task)
    except ValueError as exc:
        raise ConfigError(f"Invalid task config from {folder}: {exc}") from exc
