"""``robot-learning hil learner|actor``: HIL-SERL's two halves, for separate machines.

``finetune algo=hil_serl`` runs both on one machine; this command runs one side, with the
transport settings of ``configs/hil.yaml`` (token, TLS, address).
"""

from __future__ import annotations

import zlib

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

#: keys of configs/hil.yaml that are not FinetuneConfig fields
_CLI_ONLY = (
    *TASK_SHORTHANDS,
    "task",
    "algo",
    "transport",
    "actor_id",
    "actor_seed",
    "max_episodes",
)
ROLES = ("learner", "actor")


def default_actor_seed(seed: int, actor_id: str) -> int:
    """``actor_seed=null``: a seed derived from the run seed and the actor's name (stable)."""
    return seed + 10_000 * (zlib.crc32(actor_id.encode()) % 1000 + 1)


@COMMANDS.register("hil")
def hil_command(args: list[str]) -> int:
    """Run the learner or one actor (see ``robot-learning hil --help``)."""
    from robot_learning.hil.config import TransportConfig
    from robot_learning.rl import FinetuneConfig
    from robot_learning.rl.loop import algo_config

    if not args or args[0] not in ROLES:
        raise ConfigError(f"usage: robot-learning hil learner|actor key=value ...; got {args[:1]}")
    role, overrides = args[0], args[1:]
    cfg = load_config("hil", overrides)
    data = to_container(cfg)
    algo = dict(data["algo"])
    name = algo.pop("name", None)
    if name != "hil_serl":
        raise ConfigError(f"hil runs algo=hil_serl (got algo={name})")
    transport = build(TransportConfig, data["transport"], where="hil", prefix="transport.")
    actor_id, actor_seed, max_episodes = data["actor_id"], data["actor_seed"], data["max_episodes"]
    task = task_config(cfg)
    for key in _CLI_ONLY:
        data.pop(key, None)
    run = build(
        FinetuneConfig, {"task": task, "algo": name, "algo_overrides": algo, **data}, where="hil"
    )
    algo_cfg = algo_config(run)
    console = Console()
    if role == "learner":
        from robot_learning.hil.learner import run_learner

        def ready(address: str) -> None:
            console.print(
                f"[bold]hil learner[/] on {task.name} listening on {address} -> {run.out}"
            )

        summary = run_learner(run, algo_cfg, transport, progress=True, on_ready=ready)
        final = summary["final_eval"]
        console.print(
            f"{summary['env_steps']} env steps from {summary['actors']} actors, {summary['updates']} updates, "
            f"{summary['policy_versions']} policy versions; interventions {summary['interventions']} "
            f"(rate {summary['intervention_rate']:.1%}); final success {final['success_rate']:.0%}; "
            f"{run.out}/hil.json"
        )
        return 0
    from robot_learning.hil.actor import run_actor

    seed = actor_seed if actor_seed is not None else default_actor_seed(run.seed, actor_id)
    console.print(f"[bold]hil actor[/] {actor_id} on {task.name} -> learner {transport.learner}")
    stats = run_actor(
        task,
        algo_cfg,
        transport,
        actor_id,
        seed,
        out=run.out,
        max_episodes=max_episodes,
        threads=run.threads or 1,
    )
    console.print(
        f"{stats.episodes} episodes, {stats.env_steps} steps, {stats.successes} successes, "
        f"{stats.interventions} interventions, policy versions {stats.versions[:1]}..{stats.versions[-1:]}, "
        f"stopped by {stats.stopped}"
    )
    return 0
