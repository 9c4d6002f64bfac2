"""What ``--help`` describes for each command: its YAML, its dataclasses and its config groups.

The settings, defaults and meanings themselves are read from those sources by
:mod:`robot_learning.cli.help`; this table only says where to look.
"""

from __future__ import annotations

from robot_learning.cli.help import HELP, CommandHelp


def _policy_config(name: str) -> type | None:
    from robot_learning.policy import POLICIES

    return POLICIES.get(name).config_class


def _algo_config(name: str) -> type | None:
    from robot_learning.rl.algos import ALGOS
    from robot_learning.rl.own_loop import LOOP_ALGOS

    if name in LOOP_ALGOS:  # e.g. pa_rl
        return LOOP_ALGOS.get(name).config_class
    return ALGOS.get(name).Config


def _task_config(name: str) -> type | None:
    from robot_learning.envs import TaskConfig

    return TaskConfig


def _robot_config(name: str) -> type | None:
    from hardware.robot import ROBOTS

    return ROBOTS.get(name).config_class


def _teleop_hydra_args(args: list[str]) -> list[str]:
    from robot_learning.cli.teleop import split_device_options

    return split_device_options(args)[0]


def _no_class(name: str) -> None:
    return None  # recipes set other settings; they have no fields of their own


def register_all() -> None:
    """Fill :data:`HELP` (imports the command configs' dataclasses)."""
    if HELP:
        return
    from robot_learning.bench.inference import InferenceBenchConfig
    from robot_learning.bench.ros import RosBenchConfig
    from robot_learning.bench.sim import SimBenchConfig
    from robot_learning.bench.train import TrainBenchConfig
    from robot_learning.cli.bundle import BundleInfoOptions
    from robot_learning.cli.dataset import (
        InfoOptions,
        NoOptions,
        SetSpecOptions,
        ValidateOptions,
        VisualizeOptions,
    )
    from robot_learning.collect import CollectConfig
    from robot_learning.envs import TaskConfig
    from robot_learning.evaluation import EvalConfig
    from robot_learning.export.exporter import ExportConfig
    from robot_learning.rl.config import FinetuneConfig
    from robot_learning.teleop import TeleopConfig
    from robot_learning.training.config import TrainConfig
    from ros_nodes.deploy import DeployConfig

    task = {"task": _task_config}
    HELP["collect"] = CommandHelp(
        usage="collect task=<name> [obs=state|pixels] [backend=mujoco|pybullet] [policy=DIR] [instruction=...] episodes=N out=DIR",
        summary="Record scripted-expert episodes into a LeRobotDataset v3.0 (collect.json holds the "
        "counts); with resume=true, episodes= is the dataset's total.",
        config="collect",
        classes=(CollectConfig, TaskConfig),
        groups=task,
    )
    HELP["teleop"] = CommandHelp(
        usage="teleop task=<name> device=<name> out=DIR episodes=N [policy=DIR] [resume=true]",
        summary="Record operator demonstrations (device=expert: the simulated operator) or, with "
        "policy=, human corrections of a driving policy into a LeRobotDataset v3.0 with "
        "intervention columns; teleop.json holds the counts.",
        config="teleop",
        classes=(TeleopConfig, TaskConfig),
        groups=task,
        prepare=_teleop_hydra_args,
    )
    HELP["train"] = CommandHelp(
        usage="train policy=<name> dataset=DIR|[DIR,...] out=DIR [task=<name>] [steps=N] [init=DIR] [resume=true]",
        summary="Imitation training of a zoo policy on a LeRobotDataset: checkpoints, TensorBoard "
        "logs, train.json and the final (EMA) policy in out/final. Several processes or GPUs: "
        "torchrun --nproc-per-node N -m robot_learning.cli train ... (batch_size is the global "
        "batch).",
        config="train",
        classes=(TrainConfig,),
        groups={"policy": _policy_config, **task, "recipe": _no_class},
        examples={"task": "lift"},
    )
    HELP["eval"] = CommandHelp(
        usage="eval checkpoint=DIR|bundle=DIR [task=<name>] [episodes=N] [runtime=...] [instruction=...] [video=true]",
        summary="Evaluate a checkpoint or an exported bundle on a task; writes eval.json.",
        config="eval",
        classes=(EvalConfig,),
        groups=task,
        examples={"task": "lift"},
    )
    HELP["export"] = CommandHelp(
        usage="export checkpoint=DIR out=DIR [format=onnx|tensorrt] [fp16=true] [steps=K]",
        summary="Export a checkpoint (or a finetune run) as a bundle: model.onnx + policy.json.",
        config="export",
        classes=(ExportConfig,),
    )
    HELP["finetune"] = CommandHelp(
        usage="finetune algo=<name> task=<name> out=DIR [env_steps=N] [demos=DIR] [resume=true]",
        summary="Off-policy RL (sac, td3, dsac_t, rlpd, residual) on a task; writes finetune.json "
        "and a learning curve. algo=pa_rl: PA-RL on a VLA checkpoint (its own loop, pa_rl.json).",
        config="finetune",
        classes=(FinetuneConfig,),
        groups={"algo": _algo_config, **task},
        examples={"task": "reach"},
    )
    from robot_learning.hil.config import TransportConfig

    hil_classes = (FinetuneConfig, TransportConfig)
    HELP["hil"] = CommandHelp(
        usage="hil learner|actor task=<name> out=DIR [transport.token=...] [key=value ...]",
        summary="HIL-SERL across machines: the learner (RLPD, serves weights) or one actor "
        "(policy + teleop device); finetune algo=hil_serl runs both locally.",
        subcommands={
            "learner": CommandHelp(
                usage="hil learner task=<name> out=DIR [demos=DIR] [transport.port=50051] [transport.host=...]",
                summary="Serve actors over gRPC (token; TLS with transport.cert/key[/client_ca]), "
                "train on their transitions, write hil.json.",
                config="hil",
                classes=hil_classes,
                groups={"algo": _algo_config, **task},
                examples={"task": "reach"},
            ),
            "actor": CommandHelp(
                usage="hil actor task=<name> out=DIR transport.learner=HOST:PORT actor_id=NAME",
                summary="Run the learner's current policy with a teleop device for interventions "
                "and stream every transition to the learner.",
                config="hil",
                classes=hil_classes,
                groups={"algo": _algo_config, **task},
                examples={"task": "reach"},
            ),
        },
    )
    HELP["deploy"] = CommandHelp(
        usage="deploy bundle=DIR robot=sim [task=<name>] [episodes=N] [out=DIR]",
        summary="Serve a bundle with policy_node against sim_robot_node over ROS 2; writes deploy.json.",
        config="deploy",
        classes=(DeployConfig,),
        groups={"robot": _robot_config, **task},
        examples={"task": "lift"},
    )
    HELP["robot"] = CommandHelp(
        usage="robot list | robot check|calibrate robot=<name> [task=<name>] [robot.<key>=...]",
        summary="List the robots, check one (connect, read, hold: rates, ranges, limits) or "
        "calibrate it (a JSON file per robot id).",
        subcommands={
            "list": CommandHelp(
                usage="robot list", summary="Registered robots and what they need."
            ),
            "check": CommandHelp(
                usage="robot check robot=<name> [task=<name>] [steps=50] [out=FILE]",
                summary="Connect, read and hold for N control periods; report the observed "
                "rates, observation ranges, limits and safety events.",
                config="robot",
                groups={"robot": _robot_config, **task},
                examples={"task": "lift"},
            ),
            "calibrate": CommandHelp(
                usage="robot calibrate robot=<name> [robot.id=<name>]",
                summary="Measure and save this robot's calibration "
                "(<calibration_dir>/<type>/<id>.json).",
                config="robot",
                groups={"robot": _robot_config, **task},
                examples={"task": "lift"},
            ),
        },
    )
    HELP["bench"] = CommandHelp(
        usage="bench sim|train|inference|ros [key=value ...]",
        summary="Measure and record numbers (bench.json plus a printed table).",
        subcommands={
            "sim": CommandHelp(
                usage="bench sim [tasks=[lift,pusht]] [out=DIR]",
                summary="Environment steps/s, single env and gymnasium AsyncVectorEnv.",
                config="bench_sim",
                classes=(SimBenchConfig,),
            ),
            "train": CommandHelp(
                usage="bench train preset=<name> policy=<name> [minutes=M | steps=N]",
                summary="Collect demos, train a policy on a preset task, evaluate it and time inference.",
                config="bench_train",
                classes=(TrainBenchConfig,),
                groups={"policy": _policy_config},
            ),
            "inference": CommandHelp(
                usage="bench inference [checkpoints=[DIR,...]] [runtimes=[...]] [calls=200]",
                summary="Latency of exported bundles per runtime at batch 1.",
                config="bench_inference",
                classes=(InferenceBenchConfig,),
            ),
            "ros": CommandHelp(
                usage="bench ros [steps=1000] [control_rate_hz=20] [out=DIR]",
                summary="Observation-to-command latency of policy_node over ROS 2.",
                config="bench_ros",
                classes=(RosBenchConfig,),
            ),
        },
    )
    HELP["dataset"] = CommandHelp(
        usage="dataset info|validate|visualize|fix-fps|set-spec DIR [key=value ...]",
        summary="Inspect, check, render or repair a LeRobotDataset v3.0 folder.",
        subcommands={
            "info": CommandHelp(
                usage="dataset info DIR [json=true]",
                summary="Episodes, frames, fps, features and tasks of a dataset.",
                options=InfoOptions,
            ),
            "validate": CommandHelp(
                usage="dataset validate DIR [deep=true]",
                summary="Every problem in a dataset (exit code 1 when there is one).",
                options=ValidateOptions,
            ),
            "visualize": CommandHelp(
                usage="dataset visualize DIR [episode=N] [out=FILE.png|FILE.mp4]",
                summary="A contact sheet or a video of one episode.",
                options=VisualizeOptions,
            ),
            "fix-fps": CommandHelp(
                usage="dataset fix-fps DIR",
                summary="Set meta/info.json's fps from the frame timestamps when they disagree.",
                options=NoOptions,
            ),
            "set-spec": CommandHelp(
                usage="dataset set-spec DIR task=<name>",
                summary="Store a task's bounds, control mode and names in a dataset recorded "
                "without them, as LeRobot records; LeRobot still loads it.",
                options=SetSpecOptions,
            ),
        },
    )
    HELP["bundle"] = CommandHelp(
        usage="bundle info DIR [json=true]",
        summary="Describe an exported bundle: topics, joint names, bounds, rate, QoS, diagnostics.",
        subcommands={
            "info": CommandHelp(
                usage="bundle info DIR [json=true]",
                summary="Topics, message types, joint names, bounds, control rate and QoS of a bundle.",
                options=BundleInfoOptions,
            ),
        },
    )
