"""PA-RL (Policy-Agnostic RL, Mendonca et al. 2024) for the VLA, in one readable file.

PA-RL improves a generative policy without back-propagating through its sampler:

1. **Collect.** The VLA proposes action chunks; the first ``n_action_steps`` actions of a chunk
   (its *executed part*) run in the env. Each chunk becomes one replay transition
   ``(s, a_exec, r_k, gamma**k, done, s')`` with ``r_k = sum_i gamma**i r_i`` over the ``k``
   steps actually executed (fewer than ``n_action_steps`` when the episode ends inside a chunk).
2. **Critic.** An ensemble of MLPs ``Q(s, a_exec)`` (:class:`ChunkCritic`) is fitted by TD:
   ``y = r_k + gamma**k (1 - done) min_j Q_target_j(s', a')`` with ``a'`` the improved chunk at
   ``s'`` (step 3), then the target copies follow by Polyak averaging. ``s`` is the VLA's prefix
   mean-pooled over valid tokens (detached: it carries the instruction, so Q knows which cube is
   wanted) concatenated with the normalised state keys.
3. **Improve.** At a state, sample ``num_samples`` chunks from the VLA (global search), take
   ``improve_steps`` gradient-ascent steps on each executed part w.r.t. ``min_j Q_j`` (local
   search; clamped to [-1, 1] with min_max action normalisation), and keep the argmax-Q candidate
   among the raw and improved samples. Only the executed part is changed; the tail stays the
   VLA's own sample.
4. **Distil.** The chosen chunks become regression targets for the VLA's own flow-matching loss
   (``compute_loss``), with the non-executed tail marked ``action_is_pad`` so only the part the
   critic judged is regressed. The policy class is never touched: hence "policy-agnostic".

:func:`pa_rl` loops collect (with improved chunks once the critic has been trained) -> critic
updates -> improve + distil, and returns per-iteration metrics. Caveat: the critic's state
features come from the VLA's backbone, which distillation also changes; the critic keeps
tracking them because every TD update recomputes the features with the current VLA.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from policies.vla.pa_rl_data import ChunkReplay, sample_mixed, take, window_of
from robot_learning.envs import TaskConfig, episode_instruction, make_env
from robot_learning.features import ACTION
from robot_learning.language import TASK_KEY


@dataclass
class PARLConfig:
    """Hyper-parameters of :func:`pa_rl`."""

    num_samples: int = 8
    """Chunks sampled from the VLA per state before ranking."""
    improve_steps: int = 2
    """Gradient-ascent steps on each sampled executed part w.r.t. min-Q (0: ranking only)."""
    improve_lr: float = 0.05
    """Step size of that gradient ascent (in normalised action units per unit of dQ/da)."""
    gamma: float = 0.99
    """Discount per env step; a chunk that executed k steps discounts its successor by gamma**k."""
    critic_hidden: int = 256
    """Width of each critic MLP's two hidden layers."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic ensemble."""
    num_critics: int = 2
    """Critics in the ensemble; targets and improvement use their minimum (clipped double Q)."""
    tau: float = 0.005
    """Polyak rate of the target critics: target <- (1 - tau) target + tau online."""
    batch_size: int = 64
    """Transitions per critic update and states per distillation update."""
    policy_lr: float = 1e-5
    """Adam learning rate of the VLA during distillation. Small: a converged VLA distilled with
    a fresh Adam at 1e-4 on a few dozen states lost all its successes in 30 steps (BENCHMARKS.md);
    1e-5 kept them."""
    critic_updates: int = 100
    """Critic TD updates per iteration."""
    critic_warmup_updates: int = 0
    """Updates before the first collection that regress the critic on the demonstrations'
    Monte-Carlo returns (needs ``demos``; cheap: no chunk sampling)."""
    demo_fraction: float = 0.5
    """With demonstrations: the fraction of every critic and distillation batch drawn from them
    (RLPD's symmetric sampling; in distillation the demonstrations' own chunks anchor the VLA)."""
    distill_updates: int = 20
    """Distillation (policy) updates per iteration."""
    episodes_per_iteration: int = 4
    """Episodes collected per iteration."""
    buffer_capacity: int = 100_000
    """Chunk transitions kept in the replay buffer (oldest overwritten)."""
    eval_episodes: int = 0
    """Episodes of :func:`robot_learning.evaluation.evaluate` after each iteration (0: none)."""
    seed: int = 0
    """Seeds the sampler noise, the buffer sampling and the collection episodes."""

    def __post_init__(self) -> None:
        positive = ("num_samples", "num_critics", "critic_hidden", "batch_size")
        positive += ("episodes_per_iteration", "buffer_capacity")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0.0 <= self.demo_fraction < 1.0:
            raise ValueError(f"demo_fraction={self.demo_fraction} must be in [0, 1)")
        for name in (
            "improve_steps", "critic_updates", "critic_warmup_updates", "distill_updates",
            "eval_episodes",
        ):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        for name in ("improve_lr", "critic_lr", "policy_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma={self.gamma} must be in [0, 1]")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau={self.tau} must be in (0, 1]")


def _exec_slice(policy) -> slice:
    """Chunk indices executed before re-planning (the current step is n_obs_steps - 1)."""
    start = policy.config.n_obs_steps - 1
    return slice(start, start + policy.config.n_action_steps)


@torch.no_grad()
def critic_inputs(policy, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (critic state features [B, F], prefix, prefix mask); the VLA gets no gradient."""
    prefix, mask = policy.encode_prefix(batch)
    w = mask[..., None].float()
    pooled = (prefix * w).sum(1) / w.sum(1).clamp_min(1.0)
    norm = policy.normalizer.normalize
    states = [norm(k, batch[k].float()).flatten(1) for k in policy.state_keys]
    return torch.cat([pooled, *states], dim=-1), prefix, mask


class ChunkCritic(nn.Module):
    """Ensemble ``Q_j(s, a_exec)`` over (pooled VLA prefix + states, flat executed chunk)."""

    def __init__(self, policy, hidden: int = 256, num_critics: int = 2) -> None:
        super().__init__()
        n_obs = policy.config.n_obs_steps
        state_dim = sum(n_obs * int(np.prod(policy.features[k].shape)) for k in policy.state_keys)
        self.state_dim = policy.config.d_model + state_dim
        self.action_dim = policy.config.n_action_steps * policy.action_dim

        def mlp() -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(self.state_dim + self.action_dim, hidden), nn.LayerNorm(hidden),
                nn.ReLU(), nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                nn.Linear(hidden, 1),
            )  # fmt: skip

        self.q = nn.ModuleList(mlp() for _ in range(num_critics))
        self.target = copy.deepcopy(self.q).requires_grad_(False)

    def forward(self, s: torch.Tensor, a_exec: torch.Tensor, target: bool = False) -> torch.Tensor:
        """s [B, F], a_exec [B, n_action_steps, A] (normalised) -> Q [num_critics, B]."""
        x = torch.cat([s, a_exec.flatten(1)], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in (self.target if target else self.q)])

    def min_q(self, s: torch.Tensor, a_exec: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Pessimistic value: the ensemble minimum [B]."""
        return self(s, a_exec, target).min(0).values

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """Polyak averaging of the target copies towards the online critics."""
        for p, t in zip(self.q.parameters(), self.target.parameters(), strict=True):
            t.lerp_(p, tau)


class ImprovedChunks(NamedTuple):
    """Output of :func:`improve_chunks` (all per state, ``[B, ...]``)."""

    chunks: torch.Tensor
    """Chosen normalised chunks [B, horizon, A] (executed part improved, tail as sampled)."""
    q: torch.Tensor
    """min-Q of the chosen executed parts [B]."""
    q_best_sample: torch.Tensor
    """min-Q of the best raw sample, before any gradient step [B]."""
    q_mean_sample: torch.Tensor
    """Mean min-Q over the raw samples [B]."""


def improve_chunks(
    policy,
    critic: ChunkCritic,
    batch: dict,
    num_samples: int,
    steps: int,
    lr: float,
    generator: torch.Generator | None = None,
) -> ImprovedChunks:
    """Sample ``num_samples`` chunks per state, ascend min-Q on their executed parts ``steps``
    times, and keep the best of the raw and improved candidates per state (normalised)."""
    s, prefix, mask = critic_inputs(policy, batch)
    b, n, cfg = s.shape[0], num_samples, policy.config
    noise = torch.randn(b * n, cfg.horizon, policy.action_dim, generator=generator)
    with torch.no_grad():
        rep = prefix.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
        samples = policy.sample(*rep, noise.to(prefix.device))  # [B*N, H, A]
    s = s.repeat_interleave(n, 0)
    ex = _exec_slice(policy)
    bounded = policy.config.action_norm == "min_max"
    raw = samples[:, ex].clamp(-1.0, 1.0) if bounded else samples[:, ex]
    with torch.no_grad():
        q_raw = critic.min_q(s, raw)
    a = raw.clone()
    for _ in range(steps):
        a.requires_grad_(True)
        (grad,) = torch.autograd.grad(critic.min_q(s, a).sum(), a)
        a = (a + lr * grad).detach()
        if bounded:
            a = a.clamp(-1.0, 1.0)
    with torch.no_grad():
        q_new = critic.min_q(s, a) if steps else q_raw
    # candidates: the raw and the improved version of every sample; argmax per state
    q_all = torch.cat([q_raw.view(b, n), q_new.view(b, n)], dim=1)  # [B, 2N]
    cand = torch.cat([raw.view(b, n, *raw.shape[1:]), a.view(b, n, *a.shape[1:])], dim=1)
    best = q_all.argmax(1)
    rows = torch.arange(b)
    chunks = samples.view(b, n, *samples.shape[1:])[rows, best % n].clone()  # its sampled tail
    chunks[:, ex] = cand[rows, best]
    q_raw = q_raw.view(b, n)
    return ImprovedChunks(chunks, q_all[rows, best], q_raw.max(1).values, q_raw.mean(1))


def _improve(policy, critic, batch, cfg: PARLConfig, generator) -> ImprovedChunks:
    return improve_chunks(
        policy, critic, batch, cfg.num_samples, cfg.improve_steps, cfg.improve_lr, generator
    )


def collect_chunks(
    policy,
    env,
    episodes: int,
    seed: int,
    buffer: ChunkReplay,
    cfg: PARLConfig,
    critic: ChunkCritic | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Roll out ``episodes`` episodes (seeds ``seed + i``) executing chunks (improved ones when
    a ``critic`` is given, else the VLA's own samples) and add every chunk to ``buffer``."""
    policy.eval()
    keys, ex = policy.input_keys, _exec_slice(policy)
    returns, successes = [], []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        history = deque([obs] * policy.config.n_obs_steps, maxlen=policy.config.n_obs_steps)
        task, ret, success, ended = episode_instruction(env), 0.0, False, False
        rows = []
        while not ended:
            window = window_of(history, keys)
            batch = {k: torch.from_numpy(v)[None] for k, v in window.items()}
            batch[TASK_KEY] = [task]
            if critic is not None:
                chunk = _improve(policy, critic, batch, cfg, generator).chunks[0, ex]
            else:
                shape = (1, policy.config.horizon, policy.action_dim)
                noise = torch.randn(shape, generator=generator)
                with torch.no_grad():
                    chunk = policy.sample(*policy.encode_prefix(batch)[:2], noise)[0, ex]
            if policy.config.action_norm == "min_max":
                chunk = chunk.clamp(-1.0, 1.0)
            with torch.no_grad():
                actions = policy.normalizer.unnormalize(ACTION, chunk).numpy()
            r_k, k, terminated = 0.0, 0, False
            for action in actions:
                obs, reward, terminated, truncated, info = env.step(action)
                r_k += cfg.gamma**k * float(reward)
                ret += float(reward)
                success = success or bool(info.get("is_success", False))
                history.append(obs)
                k += 1
                if terminated or truncated:
                    ended = True
                    break
            rows.append(buffer.add(
                window, task, chunk.numpy(), r_k, cfg.gamma**k, float(terminated),
                window_of(history, keys), task,
            ))  # fmt: skip
        buffer.end_episode(rows)
        returns.append(ret)
        successes.append(success)
    return {"return": float(np.mean(returns)), "success": float(np.mean(successes))}


def warmup_critic(
    policy, critic: ChunkCritic, demos: ChunkReplay, optimizer, cfg: PARLConfig, rng
) -> float:
    """Regress the critic on the demonstrations' Monte-Carlo returns for
    ``cfg.critic_warmup_updates`` steps (before any rollout); returns the last loss."""
    loss = torch.zeros(())
    for _ in range(cfg.critic_warmup_updates):
        sample = demos.sample(cfg.batch_size, rng)
        s = critic_inputs(policy, sample["obs"])[0]
        loss = ((critic(s, sample["chunk"]) - sample["mc_return"][None]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        critic.update_target(cfg.tau)
    return loss.item()


def td_target(policy, critic: ChunkCritic, sample: dict, cfg: PARLConfig, generator=None):
    """``max(r_k + gamma**k (1 - done) min_j Q_target_j(s', a'), mc_return)`` [B], ``a'``
    improved at ``s'``: the episode's own return-to-go bounds the target from below."""
    nxt = sample["next_obs"]
    a_next = _improve(policy, critic, nxt, cfg, generator).chunks[:, _exec_slice(policy)]
    with torch.no_grad():
        q_next = critic.min_q(critic_inputs(policy, nxt)[0], a_next, target=True)
        y = sample["reward"] + sample["discount"] * (1.0 - sample["done"]) * q_next
        return torch.maximum(y, sample["mc_return"])


def td_loss(policy, critic: ChunkCritic, sample: dict, cfg: PARLConfig, generator=None):
    """Mean over critics of the squared TD error on ``sample`` (a :meth:`ChunkReplay.get`)."""
    y = td_target(policy, critic, sample, cfg, generator)
    s = critic_inputs(policy, sample["obs"])[0]
    return ((critic(s, sample["chunk"]) - y[None]) ** 2).mean()


def update_critic(
    policy, critic: ChunkCritic, sample: dict, optimizer, cfg: PARLConfig, generator=None
) -> float:
    """One TD step of the ensemble, then the Polyak target update; returns the TD loss."""
    loss = td_loss(policy, critic, sample, cfg, generator)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    critic.update_target(cfg.tau)
    return loss.item()


def distill_chunks(policy, batch: dict, chunks: torch.Tensor, optimizer) -> float:
    """One step of the VLA's own flow loss towards the chosen normalised ``chunks``; only the
    executed part is regressed (the tail is ``action_is_pad``)."""
    policy.train()
    pad = torch.ones(chunks.shape[:2], dtype=torch.bool)
    pad[:, _exec_slice(policy)] = False
    with torch.no_grad():
        raw = policy.normalizer.unnormalize(ACTION, chunks)  # compute_loss normalises again
    obs = {k: v for k, v in batch.items() if k not in (ACTION, "action_is_pad")}
    loss, _ = policy.compute_loss({**obs, ACTION: raw, "action_is_pad": pad})
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    policy.eval()
    return loss.item()


def evaluate_policy(policy, task: TaskConfig, episodes: int) -> float:
    """Success rate of the VLA's own chunks (no critic) over ``episodes`` evaluation episodes."""
    from robot_learning.evaluation import EvalConfig, TorchPolicySource, evaluate

    eval_cfg = EvalConfig(task=task, episodes=episodes, num_envs=min(episodes, 4))
    return evaluate(TorchPolicySource(policy), eval_cfg).success_rate


def pa_rl(
    policy,
    task: TaskConfig,
    cfg: PARLConfig,
    iterations: int,
    on_iteration: Callable[[int, dict[str, list[float]]], bool] | None = None,
    demos: ChunkReplay | None = None,
) -> dict[str, list[float]]:
    """Run ``iterations`` of collect -> critic updates -> improve + distil on ``task``.

    ``demos`` (:func:`demo_chunks`): the critic is first fitted to their Monte-Carlo returns
    (``cfg.critic_warmup_updates``), and ``cfg.demo_fraction`` of every critic batch and every
    distillation batch comes from them (in distillation with their own chunks as targets, which
    keeps the VLA near the demonstrations while it moves towards the critic's choices).

    Returns metric name -> one value per iteration: collection ``return``/``success``, mean
    ``critic_loss``, ``q_sample_mean``/``q_sample_best``/``q_chosen`` of the distilled states,
    ``distill_loss`` and (with ``cfg.eval_episodes``) ``eval_success``. ``on_iteration(i,
    metrics)`` runs after each iteration (e.g. to save the policy); False stops the run.
    """
    if iterations < 1:
        raise ValueError(f"iterations={iterations} must be >= 1")
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    env = make_env(task)
    critic = ChunkCritic(policy, cfg.critic_hidden, cfg.num_critics)
    buffer = ChunkReplay(policy, cfg.buffer_capacity)
    critic_opt = torch.optim.Adam(critic.q.parameters(), lr=cfg.critic_lr)
    policy_opt = torch.optim.Adam(
        [p for p in policy.parameters() if p.requires_grad], cfg.policy_lr
    )
    metrics: dict[str, list[float]] = {}
    warmup_loss = math.nan
    if demos is not None and cfg.critic_warmup_updates:
        warmup_loss = warmup_critic(policy, critic, demos, critic_opt, cfg, rng)
    try:
        for it in range(iterations):
            row = collect_chunks(
                policy, env, cfg.episodes_per_iteration, cfg.seed + it * cfg.episodes_per_iteration,
                buffer, cfg, critic if it > 0 else None, generator,
            )  # fmt: skip
            fraction = cfg.demo_fraction
            losses = [
                update_critic(
                    policy,
                    critic,
                    sample_mixed(buffer, demos, cfg.batch_size, fraction, rng)[0],
                    critic_opt,
                    cfg,
                    generator,
                )  # fmt: skip
                for _ in range(cfg.critic_updates)
            ]
            row["critic_loss"] = float(np.mean(losses)) if losses else math.nan
            stats = []  # per distillation batch: mean Q of samples, best sample, chosen; loss
            for _ in range(cfg.distill_updates):
                sample, n_demo = sample_mixed(buffer, demos, cfg.batch_size, fraction, rng)
                obs, n_online = sample["obs"], cfg.batch_size - n_demo
                imp = _improve(policy, critic, take(obs, slice(0, n_online)), cfg, generator)
                chunks = imp.chunks
                if n_demo:  # the demonstrations' own executed chunks are their targets
                    tail = torch.zeros(n_demo, *chunks.shape[1:])  # padded: not regressed
                    tail[:, _exec_slice(policy)] = sample["chunk"][n_online:]
                    chunks = torch.cat([chunks, tail])
                loss = distill_chunks(policy, obs, chunks, policy_opt)
                q = (imp.q_mean_sample, imp.q_best_sample, imp.q)
                stats.append([*(v.mean().item() for v in q), loss])
            means = np.mean(stats, 0) if stats else [math.nan] * 4
            names = ("q_sample_mean", "q_sample_best", "q_chosen", "distill_loss")
            row.update({n: float(v) for n, v in zip(names, means, strict=True)})
            if cfg.eval_episodes:
                row["eval_success"] = evaluate_policy(policy, task, cfg.eval_episodes)
            row["buffer_size"] = float(len(buffer))
            if demos is not None:
                row["critic_warmup_loss"] = warmup_loss
            for name, value in row.items():
                metrics.setdefault(name, []).append(value)
            if on_iteration is not None and on_iteration(it, metrics) is False:
                break
    finally:
        env.close()
    return metrics
