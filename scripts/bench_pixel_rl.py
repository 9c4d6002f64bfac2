"""Time pixel-RL updates (DrQ encoder + critic ensemble) on a task's real observation shapes.

    python scripts/bench_pixel_rl.py [--task lift] [--image-size 96] [--batch 128] [--num-q 10]
        [--trunk fast|drq] [--pretrained RUN [--freeze]] [--updates 20] [--threads 1]

Prints the seconds per update (critic + actor step, two random shifts per frame) after two warm-up
updates. Batches are random frames: the time does not depend on their content.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from robot_learning.envs import TaskConfig, make_env
from robot_learning.rl.algos import Batch
from robot_learning.rl.algos.rlpd import RLPD, RLPDConfig
from robot_learning.rl.encoders import EncoderConfig
from robot_learning.rl.networks import action_feature
from robot_learning.rl.observations import LearnerObservations


def main() -> None:
    """Parse the arguments, build the learner, time the updates."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="lift")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--num-q", type=int, default=10)
    p.add_argument("--trunk", default="fast")
    p.add_argument("--pretrained", default=None)
    p.add_argument("--freeze", action="store_true")
    p.add_argument("--updates", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    env = make_env(
        TaskConfig.from_dict({"name": args.task, "obs": "pixels", "image_size": args.image_size})
    )
    spec = env.features
    env.close()
    obs = LearnerObservations(spec)
    enc = EncoderConfig(trunk=args.trunk, pretrained=args.pretrained, freeze=args.freeze)
    cfg = RLPDConfig(num_q=args.num_q, utd_ratio=1, encoder=enc)
    encoder = obs.encoder(enc)
    algo = RLPD(cfg, encoder.out_dim, action_feature(spec), encoder=encoder)
    rng = np.random.default_rng(0)
    act = action_feature(spec)

    def frames() -> dict[str, np.ndarray]:
        return {
            k: rng.integers(0, 256, (args.batch, *spec[k].shape), dtype=np.uint8)
            if spec[k].is_image
            else rng.standard_normal((args.batch, *spec[k].shape)).astype(np.float32)
            for k in obs.keys
        }

    def batch() -> Batch:
        sample = {
            "action": rng.uniform(act.low, act.high, (args.batch, *act.shape)).astype(np.float32),
            "reward": np.zeros(args.batch, np.float32),
            "discount": np.full(args.batch, 0.99, np.float32),
        }
        pad = enc.shift_pad
        return Batch.from_numpy(
            sample, obs.tensors(frames(), shift_pad=pad), obs.tensors(frames(), shift_pad=pad)
        )

    for _ in range(2):
        algo.update(batch())
    batches = [batch() for _ in range(args.updates)]
    start = time.perf_counter()
    for b in batches:
        algo.update(b)
    per = (time.perf_counter() - start) / args.updates
    params = sum(p.numel() for p in encoder.parameters()) / 1e6
    print(
        f"{args.task} {len(obs.image_keys)} cameras {args.image_size}px, trunk={args.trunk}"
        f"{' pretrained' if args.pretrained else ''}{' frozen' if args.freeze else ''}, batch {args.batch}, "
        f"{args.num_q} critics, {args.threads} thread(s): {per:.3f} s/update "
        f"({1 / per:.1f} updates/s), encoder {params:.2f}M parameters"
    )


if __name__ == "__main__":
    main()
