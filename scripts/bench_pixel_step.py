"""Time pixel-policy training steps: camera trunk x precision x encoded frames (BENCHMARKS.md).

Usage: ``python scripts/bench_pixel_step.py DATASET [--policy diffusion] [--batch-size 64]``.
DATASET is a pixel LeRobotDataset (e.g. ``robot-learning collect task=lift obs=pixels
'task.cameras=[front,wrist]' episodes=100 out=/tmp/lift_pixels``). For each variant it builds the
policy as ``train`` would, draws real training windows and times full steps (forward, loss,
backward, AdamW) on one torch thread after two warm-up steps.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import time

import torch

from robot_learning.datasets import LeRobotDataset
from robot_learning.policy import POLICIES
from robot_learning.training.config import build_policy_config
from robot_learning.training.windows import WindowDataset, merged_stats


def time_steps(dataset, policy_name, backbone, precision, image_obs_steps, batch_size, steps):
    """Mean seconds per training step of one variant."""
    torch.manual_seed(0)
    cls = POLICIES.get(policy_name)
    overrides = {
        "down_dims": [64, 128, 256],
        "vision_backbone": backbone,
        "image_obs_steps": image_obs_steps,
    }
    cfg = build_policy_config(cls, overrides)
    policy = cls(cfg, dataset.features, merged_stats([dataset])).train()
    windows = WindowDataset([dataset], policy.input_keys, cfg.n_obs_steps, cfg.horizon)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    rng = torch.Generator().manual_seed(0)

    def step():
        batch = windows.get_batch(torch.randint(0, len(windows), (batch_size,), generator=rng))
        autocast = (
            torch.autocast("cpu", torch.bfloat16)
            if precision == "bf16"
            else contextlib.nullcontext()
        )
        with autocast:
            loss, _ = policy.compute_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    """Print one line per variant: ms/step, steps/s and the speed-up over fp32 / all frames."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--policy", default="diffusion")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--backbones", default="resnet18,small")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = LeRobotDataset(args.dataset)
    for backbone in args.backbones.split(","):
        base = None
        for precision, frames in itertools.product(("fp32", "bf16"), (None, 1)):
            seconds = time_steps(
                dataset, args.policy, backbone, precision, frames, args.batch_size, args.steps
            )
            base = base or seconds
            print(
                f"{backbone:9s} precision={precision} image_obs_steps={frames!s:4s} "
                f"batch {args.batch_size}: {1000 * seconds:6.0f} ms/step  "
                f"{1 / seconds:5.2f} steps/s  x{base / seconds:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
