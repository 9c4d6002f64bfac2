"""``robot-learning train``: imitation training of a zoo policy on a LeRobotDataset."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from robot_learning.cli import COMMANDS
from robot_learning.config import (
    TASK_SHORTHANDS,
    ConfigError,
    build,
    check_values,
    load_config,
    task_config,
    to_container,
)
from robot_learning.envs import TaskConfig
from robot_learning.features import FeatureSpec

#: keys of configs/train.yaml that are not TrainConfig fields
_CLI_ONLY = TASK_SHORTHANDS


@COMMANDS.register("train")
def train_command(args: list[str]) -> int:
    """Parse overrides, train, print a summary; exit 130 when stopped by Ctrl-C/SIGTERM."""
    from robot_learning.datasets import LeRobotDataset
    from robot_learning.training import TrainConfig, train

    cfg = load_config("train", args)
    data = to_container(cfg)
    policy_fields = dict(data.pop("policy"))
    name = policy_fields.pop("name", None)
    if not name:
        raise ConfigError(
            "configs/policy/<name>.yaml must set 'name:' to the registered policy name"
        )
    if data.get("init") is not None:
        from robot_learning.training.init_weights import init_policy_fields

        given = {a.split("=", 1)[0].lstrip("+~").removeprefix("policy.") for a in args}
        policy_fields = init_policy_fields(data["init"], name, policy_fields, given)
    check_policy_settings(name, policy_fields)
    _check_types_early(data)
    task = None
    if "task" in data:
        first = data["dataset"] if isinstance(data["dataset"], str) else data["dataset"][0]
        features = LeRobotDataset(first).features
        task = resolve_task(task_config(cfg), features, args)
    data.pop("task", None)
    for key in _CLI_ONLY:
        data.pop(key, None)
    if data["eval_every"] is None:
        data["eval_every"] = data["save_every"] if task is not None else 0
    run = build(
        TrainConfig,
        {"policy": name, "policy_overrides": policy_fields, "task": task, **data},
        where="train",
    )
    console = Console()
    console.print(
        f"[bold]train[/] {name} on {run.dataset} -> {run.out} ({run.steps} steps, batch {run.batch_size})"
    )
    result = train(run)
    console.print(
        f"{result.stopped} at step {result.step}: {result.steps_per_s:.1f} steps/s, "
        f"final loss {_format_loss(result.final_loss(run.log_every))} "
        f"(mean of the last {min(len(result.losses), run.log_every)} steps); "
        + (
            f"policy in {result.final_dir}"
            if result.final_dir
            else f"resume with resume=true out={run.out}"
        )
    )
    if result.post_training.get("summary"):
        console.print(result.post_training["summary"])
    if result.evals:
        step, ev = max(result.evals.items())
        low, high = ev["success_ci95"]
        console.print(
            f"eval at step {step}: success {ev['success_rate']:.1%} (95% CI {low:.1%}-{high:.1%}) "
            f"over {ev['episodes']} episodes, mean max reward {ev['mean_max_reward']:.3f}"
        )
    return 130 if result.stopped == "interrupted" else 0


def _check_types_early(data: dict[str, Any]) -> None:
    """Type-check the run settings before the dataset is read (``task=`` loads its features)."""
    from robot_learning.training import TrainConfig

    skip = ("task", "eval_every", *_CLI_ONLY)  # eval_every=null is resolved below
    check_values(TrainConfig, {k: v for k, v in data.items() if k not in skip}, where="train")


def check_policy_settings(name: str, fields: dict[str, Any]) -> None:
    """Fail now (not after loading the dataset) on ``policy.<field>`` values of the wrong type."""
    from robot_learning.policy import POLICIES
    from robot_learning.training import build_policy_config

    try:
        policy_cls = POLICIES.get(name)
    except KeyError:
        return  # the training loop reports the unknown policy with the registered names
    build_policy_config(policy_cls, fields)


def resolve_task(task: TaskConfig, features: FeatureSpec, args: list[str]) -> TaskConfig:
    """Fill the task's obs mode, image size and cameras from ``features`` unless set on the command line."""
    from robot_learning.evaluation import task_overrides_for

    implied = task_overrides_for(features)
    explicit = {key for key in implied if _given(args, key)}
    if "obs" in explicit and task.obs != implied["obs"]:
        return task  # the user asked for a mode the policy/dataset lacks: the spec check names the keys
    values: dict[str, Any] = {k: getattr(task, k) for k in task.__dataclass_fields__}
    values.update({k: v for k, v in implied.items() if k not in explicit})
    return TaskConfig.from_dict(values)


def _given(args: list[str], key: str) -> bool:
    names = {key, f"task.{key}"}
    return any(a.split("=", 1)[0].lstrip("+~") in names for a in args)


def _format_loss(loss: float | None) -> str:
    return f"{loss:.4f}" if loss is not None else "-"
