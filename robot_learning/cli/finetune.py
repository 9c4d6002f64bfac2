"""``robot-learning finetune``: off-policy RL (``algo=sac|td3|rlpd|dsac_t|residual``) on a task's
observations, or PA-RL on a VLA checkpoint (``algo=pa_rl``, its own loop)."""

from __future__ import annotations

import logging

from rich.console import Console

from robot_learning.cli import COMMANDS
from robot_learning.config import (
    TASK_SHORTHANDS,
    ConfigError,
    build,
    load_config,
    task_config,
    to_container,
)

log = logging.getLogger(__name__)

#: keys of configs/finetune.yaml that are not FinetuneConfig fields
_CLI_ONLY = (*TASK_SHORTHANDS, "task", "algo")


@COMMANDS.register("finetune")
def finetune_command(args: list[str]) -> int:
    """Parse overrides, run or resume the learner, print a summary."""
    from robot_learning.rl import FinetuneConfig, finetune

    cfg = load_config("finetune", args)
    data = to_container(cfg)
    algo = dict(data["algo"])
    name = algo.pop("name", None)
    if not name:
        raise ConfigError(
            "configs/algo/<name>.yaml must set 'name:' to the registered algorithm name"
        )
    task = task_config(cfg)
    for key in _CLI_ONLY:
        data.pop(key, None)
    from robot_learning.rl.own_loop import LOOP_ALGOS

    if name in LOOP_ALGOS:  # e.g. pa_rl: chunk-level iterations, not the per-step loop
        if data.get("num_workers") is not None:
            raise ConfigError(
                f"algo={name} runs its own loop in this process; drop num_workers= (Ray workers "
                "step the environments of the shared RL loop)"
            )
        return LOOP_ALGOS.get(name)(data, task, algo)
    run = build(
        FinetuneConfig,
        {"task": task, "algo": name, "algo_overrides": algo, **data},
        where="finetune",
    )
    check_algo_settings(run)
    from robot_learning.training.distributed import Distributed

    console = Console(quiet=not Distributed.from_env().is_main)  # torchrun: rank 0 reports
    console.print(
        f"[bold]finetune[/] {name} on {task.name} -> {run.out} ({run.env_steps} env steps, "
        f"{run.num_envs} envs, utd {run.utd_ratio})"
    )

    def on_eval(steps: int, summary: dict) -> None:
        console.print(
            f"eval at {steps} env steps: return {summary['return']:.3f}, "
            f"success {summary['success_rate']:.0%} ({run.eval_episodes} episodes)"
        )

    result = finetune(run, progress=True, on_eval=on_eval)
    first, last = result.evals[0], result.evals[-1]
    console.print(
        f"{result.env_steps} env steps, {result.updates} updates in {result.seconds:.1f} s this process; "
        f"eval return {first['return']:.3f} -> {last['return']:.3f}, "
        f"success {first['success_rate']:.0%} -> {last['success_rate']:.0%}; "
        f"curve in {run.out}/learning_curve.png"
    )
    if result.stopped != "completed":
        console.print(
            f"stopped early ({result.stopped}) at {result.env_steps} env steps; checkpoint saved, "
            "continue with resume=true"
        )
    return 0


def check_algo_settings(run) -> None:
    """Fail now on ``algo.<field>`` values of the wrong type; warn about settings that starve the learner."""
    from robot_learning.rl.loop import algo_config

    algo_cfg = algo_config(run)
    critic_warmup = getattr(algo_cfg, "critic_warmup", 0)
    updates = int((run.env_steps - run.warmup_steps) * run.utd_ratio)
    if critic_warmup and updates <= critic_warmup:
        log.warning(
            "algo.critic_warmup=%d >= the run's %d gradient updates ((env_steps - warmup_steps) * "
            "utd_ratio): the actor will never train; lower algo.critic_warmup or raise env_steps",
            critic_warmup,
            updates,
        )
