"""``robot-learning eval``: roll out a policy checkpoint on a task, write eval.json (+ videos)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from robot_learning.cli import COMMANDS
from robot_learning.config import ConfigError, load_config, task_config, to_container
from robot_learning.envs import TaskConfig

RUNTIMES = ("torch",)


@COMMANDS.register("eval")
def eval_command(args: list[str]) -> int:
    """Evaluate ``checkpoint=DIR`` on ``task=<name>``; eval.json goes to ``out`` or the checkpoint folder."""
    from robot_learning.cli.train import resolve_task
    from robot_learning.collect import write_json
    from robot_learning.evaluation import EvalConfig, TorchPolicySource, evaluate
    from robot_learning.policy import Policy

    cfg = load_config("eval", args)
    data = to_container(cfg)
    if data["bundle"] is not None:
        raise ConfigError("bundle= evaluation arrives with export; evaluate a checkpoint=DIR for now")
    if data["checkpoint"] is None:
        raise ConfigError("eval needs checkpoint=DIR (a folder with config.json and model.safetensors)")
    if data["runtime"] not in RUNTIMES:
        raise ConfigError(f"runtime={data['runtime']!r} is not available yet; use one of {RUNTIMES}")
    if data["threads"] is not None:
        import torch

        torch.set_num_threads(int(data["threads"]))
    checkpoint = Path(data["checkpoint"])
    _check_checkpoint(checkpoint)
    policy = Policy.load(checkpoint, map_location=data["device"]).to(data["device"])
    meta = json.loads((checkpoint / "config.json").read_text())
    if "task" in data:
        task = resolve_task(task_config(cfg), policy.features, args)
    else:
        task = _trained_task(meta, checkpoint, data)
        task = resolve_task(task, policy.features, args)
    out = Path(data["out"]) if data["out"] is not None else checkpoint
    try:
        run = EvalConfig(task=task, episodes=int(data["episodes"]), num_envs=int(data["num_envs"]),
                         seed=int(data["seed"]), video_episodes=int(data["video_episodes"]) if data["video"] else 0)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Invalid eval settings: {exc}") from exc
    source = TorchPolicySource(policy, seed=run.seed)
    result = evaluate(source, run, video_dir=out / "videos", progress=True)
    payload = result.to_json(source, run, extra={"checkpoint": str(checkpoint.resolve()), "step": meta.get("step"),
                                                  "policy_config": meta.get("config")})
    write_json(out / "eval.json", payload)
    low, high = payload["success_ci95"]
    Console().print(
        f"[bold]eval[/] {source.name} on {task.name}/{task.backend}/{task.obs}: success "
        f"{payload['success_rate']:.1%} (95% CI {low:.1%}-{high:.1%}) over {payload['episodes']} episodes, "
        f"mean max reward {payload['mean_max_reward']:.3f}, mean length {payload['mean_episode_length']:.1f}; "
        f"wrote {out / 'eval.json'}" + (f" and {len(result.videos)} videos" if result.videos else "")
    )
    return 0


def _check_checkpoint(path: Path) -> None:
    if (path / "config.json").is_file():
        return
    hints = [p for p in (path / "final", path / "checkpoints" / "last") if (p / "config.json").is_file()]
    hint = f"; did you mean checkpoint={hints[0]}?" if hints else ""
    raise FileNotFoundError(f"{path} is not a policy checkpoint (no config.json){hint}")


def _trained_task(meta: dict, checkpoint: Path, data: dict) -> TaskConfig:
    """The task recorded in the checkpoint's training config (with backend/obs shorthands applied)."""
    task = (meta.get("train_config") or {}).get("task")
    if not task:
        raise ConfigError(f"{checkpoint} records no training task; pass task=<name>")
    task = {**task, **{k: data[k] for k in ("backend", "obs") if data.get(k) is not None}}
    try:
        return TaskConfig.from_dict(task)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Invalid task config from {checkpoint}: {exc}") from exc
