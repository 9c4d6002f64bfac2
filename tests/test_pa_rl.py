"""PA-RL for the VLA (policies/vla/pa_rl.py): chunk improvement against a critic, distillation
into the VLA's flow loss, chunk-level TD learning and replay discounts, and a tiny end-to-end
run on lift_color. Every VLA here is tiny and untrained: the tests check the mechanics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from policies.vla import VLAConfig, VLAPolicy
from policies.vla.pa_rl import (
    ChunkCritic,
    ChunkReplay,
    PARLConfig,
    collect_chunks,
    critic_inputs,
    distill_chunks,
    improve_chunks,
    pa_rl,
    td_loss,
    td_target,
    update_critic,
    warmup_critic,
)
from policies.vla.pa_rl_data import demo_chunks
from robot_learning.envs import TaskConfig, make_env

TINY = dict(d_model=32, n_heads=2, backbone_layers=1, expert_layers=1, text_layers=1, horizon=8)
N_EXEC = 4  # executed steps per chunk (n_action_steps)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def features():
    return make_env(TaskConfig(name="lift_color")).features


def tiny_vla(features, action_range: float = 1.0, seed: int = 0) -> VLAPolicy:
    """An untrained tiny VLA for lift_color's features; actions normalised from
    [-action_range, action_range] (2.0 makes raw and normalised chunks differ)."""
    keys = features.observation_keys
    stats = {k: {"min": list(features[k].low), "max": list(features[k].high)} for k in keys}
    stats["action"] = {"min": [-action_range] * 4, "max": [action_range] * 4}
    torch.manual_seed(seed)
    cfg = VLAConfig(**{**TINY, "max_tokens": 48, "n_action_steps": N_EXEC})
    return VLAPolicy(cfg, features, stats).eval()


def scene_batch(policy, seeds) -> dict:
    """First observations of lift_color scenes, both instructions alternating."""
    env = make_env(TaskConfig(name="lift_color"))
    obs = [env.reset(seed=s)[0] for s in seeds]
    out = {k: torch.as_tensor(np.stack([o[k] for o in obs]))[:, None] for k in policy.input_keys}
    out["task"] = [f"lift the {('red', 'blue')[i % 2]} cube" for i in range(len(seeds))]
    return out


class PlusXCritic(ChunkCritic):
    """A hand-made ensemble that prefers chunks moving in +x: Q_j = sum of the executed dx
    (normalised) + c_j tanh(s_0), c = (0, 0.5), so the min depends on the state."""

    def forward(self, s, a_exec, target=False):
        moves = a_exec[..., 0].sum(1)
        return torch.stack([moves, moves + 0.5 * torch.tanh(s[:, 0])])


def test_improvement_raises_the_critics_value_of_the_chosen_chunks(features):
    policy = tiny_vla(features)
    batch = scene_batch(policy, range(8))
    critic = PlusXCritic(policy, hidden=8)
    # the samples improve_chunks draws (same noise): [B, N, H, A]
    noise = torch.randn(8 * 8, 8, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        prefix, mask = policy.encode_prefix(batch)
        samples = policy.sample(prefix.repeat_interleave(8, 0), mask.repeat_interleave(8, 0), noise)
    samples = samples.view(8, 8, 8, 4)
    # no gradient step: the chosen chunk is the best raw sample (argmax over the samples)
    rank = improve_chunks(policy, critic, batch, 8, 0, 0.5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(rank.q, rank.q_best_sample)
    assert (rank.q_best_sample > rank.q_mean_sample + 0.1).all()
    best = samples[:, :, :N_EXEC, 0].clamp(-1, 1).sum(2).argmax(1)
    chosen = samples[torch.arange(8), best]
    torch.testing.assert_close(rank.chunks[:, :N_EXEC], chosen[:, :N_EXEC].clamp(-1, 1))
    torch.testing.assert_close(rank.chunks[:, N_EXEC:], chosen[:, N_EXEC:])
    # two gradient steps: higher Q than the samples' mean and than their best, by a margin
    imp = improve_chunks(policy, critic, batch, 8, 2, 0.5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(imp.q_best_sample, rank.q_best_sample)
    assert imp.chunks.shape == (8, 8, 4) and imp.chunks[:, :N_EXEC].abs().max() <= 1.0
    assert (imp.q > imp.q_mean_sample + 1.0).all(), (imp.q, imp.q_mean_sample)
    assert (imp.q > imp.q_best_sample + 0.5).all(), (imp.q, imp.q_best_sample)
    # the reported Q is the min-Q of the returned executed parts, whose tail is a sample's
    s = critic_inputs(policy, batch)[0]
    with torch.no_grad():
        torch.testing.assert_close(critic.min_q(s, imp.chunks[:, :N_EXEC]), imp.q)
    tails = (samples[:, :, N_EXEC:] - imp.chunks[:, None, N_EXEC:]).abs().amax((2, 3))
    assert (tails.min(1).values == 0).all()
    # only that sample's dx actions moved (this critic's gradient has no other component)
    source = samples[torch.arange(8), tails.argmin(1), :N_EXEC].clamp(-1, 1)
    torch.testing.assert_close(imp.chunks[:, :N_EXEC, 1:], source[..., 1:])
    assert (imp.chunks[:, :N_EXEC, 0] >= source[..., 0]).all()


def test_distillation_moves_the_policy_towards_the_chosen_chunks(features, monkeypatch):
    policy = tiny_vla(features, action_range=2.0)  # raw = 2 x normalised
    batch = scene_batch(policy, range(8))
    chosen = torch.zeros(8, 8, 4)
    chosen[:, :N_EXEC] = torch.tensor([0.8, -0.6, 0.4, 0.7])  # normalised executed part
    chosen[:, N_EXEC:] = 5.0  # a wild tail: must not be regressed
    noise = torch.randn(8, 8, 4, generator=torch.Generator().manual_seed(1))
    target = policy.normalizer.unnormalize("action", chosen)[:, :N_EXEC]

    def error() -> float:
        with torch.no_grad():
            return float(((policy.predict_chunk(batch, noise)[:, :N_EXEC] - target) ** 2).mean())

    seen = []
    original = VLAPolicy.compute_loss
    monkeypatch.setattr(
        VLAPolicy, "compute_loss", lambda self, b: seen.append(b) or original(self, b)
    )
    before = error()
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    losses = [distill_chunks(policy, batch, chosen, opt) for _ in range(60)]
    after = error()
    # compute_loss got the raw chunk (it normalises itself) with only the executed part valid
    torch.testing.assert_close(seen[0]["action"], 2.0 * chosen)
    assert seen[0]["action_is_pad"].tolist() == [[False] * N_EXEC + [True] * 4] * 8
    assert max(losses) < 5.0, losses  # the tail (5.0 -> 10 raw) would dominate the loss
    assert after < 0.1 * before, (before, after)
    assert not policy.training


class CountingEnv:
    """A stand-in env with lift_color's observations: reward t at step t (1-based),
    terminated at step 6; every observation holds the step count."""

    instruction = "lift the red cube"

    def __init__(self, features) -> None:
        self.shapes = {k: features[k].shape for k in features.observation_keys}
        self.t = 0

    def _obs(self):
        return {k: np.full(s, self.t * 0.05, np.float32) for k, s in self.shapes.items()}

    def reset(self, seed=None):
        self.t = 0
        return self._obs(), {"is_success": False}

    def step(self, action):
        assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
        self.t += 1
        return self._obs(), float(self.t), self.t == 6, False, {"is_success": self.t == 6}


def test_replay_stores_discounted_chunk_transitions_and_td_learning_fits_them(features):
    policy = tiny_vla(features)
    cfg = PARLConfig(gamma=0.9, num_samples=4, improve_steps=1, critic_hidden=64, critic_lr=3e-3)
    buffer = ChunkReplay(policy, capacity=16)
    env = CountingEnv(features)
    stats = collect_chunks(policy, env, 3, 0, buffer, cfg, generator=torch.Generator())
    assert len(buffer) == 6 and stats == {"return": 21.0, "success": 1.0}
    g = cfg.gamma
    # each episode: steps 1-4 (not done), then steps 5-6 (terminated inside the chunk)
    np.testing.assert_allclose(buffer.reward[:2], [1 + 2 * g + 3 * g**2 + 4 * g**3, 5 + 6 * g])
    np.testing.assert_allclose(buffer.discount[:2], [g**4, g**2])
    assert buffer.done[:6].tolist() == [0, 1] * 3 and buffer.task[:6] == [env.instruction] * 6
    state = buffer.obs["observation.state"]
    assert state[0, 0, 0] == 0 and buffer.next_obs["observation.state"][0, 0, 0] == state[1, 0, 0]
    np.testing.assert_allclose(buffer.next_obs["observation.state"][1], 0.3)  # t = 6
    assert np.abs(buffer.chunk[:6]).max() <= 1.0
    # each episode's return-to-go, filled backwards when it ended
    np.testing.assert_allclose(buffer.mc_return[1::2][:3], buffer.reward[1::2][:3])
    np.testing.assert_allclose(buffer.mc_return[0], buffer.reward[0] + g**4 * buffer.reward[1])
    # TD learning on this fixed buffer: the squared TD error falls
    torch.manual_seed(0)
    critic = ChunkCritic(policy, cfg.critic_hidden, cfg.num_critics)
    opt = torch.optim.Adam(critic.q.parameters(), lr=cfg.critic_lr)
    everything = buffer.get(np.arange(len(buffer)))
    # the TD target bootstraps only from non-terminal transitions, discounted by gamma**k
    y = td_target(policy, critic, everything, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y[1::2], everything["reward"][1::2])  # done: no bootstrap
    nxt = improve_chunks(policy, critic, everything["next_obs"], 4, 1, cfg.improve_lr,
                         torch.Generator().manual_seed(0))  # fmt: skip
    s_next = critic_inputs(policy, everything["next_obs"])[0]
    with torch.no_grad():
        q_next = critic.min_q(s_next, nxt.chunks[:, :N_EXEC], target=True)
    bootstrapped = everything["reward"][::2] + g**4 * q_next[::2]
    # the episode's own return-to-go is a lower bound of the target
    torch.testing.assert_close(y[::2], torch.maximum(bootstrapped, everything["mc_return"][::2]))

    def error() -> float:
        return td_loss(policy, critic, everything, cfg, torch.Generator().manual_seed(0)).item()

    before = error()
    target_before = [p.clone() for p in critic.target.parameters()]
    rng = np.random.default_rng(0)
    for _ in range(80):
        update_critic(policy, critic, buffer.sample(6, rng), opt, cfg, torch.Generator())
    after = error()
    assert after < 0.05 * before, (before, after)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(target_before, critic.target.parameters(), strict=True)
    ]
    assert all(moved)  # Polyak-averaged towards the online critics


def test_config_values_are_checked():
    with pytest.raises(ValueError, match="num_samples=0 must be >= 1"):
        PARLConfig(num_samples=0)
    with pytest.raises(ValueError, match=r"gamma=1.5 must be in \[0, 1\]"):
        PARLConfig(gamma=1.5)
    with pytest.raises(ValueError, match="tau=0.0"):
        PARLConfig(tau=0.0)
    with pytest.raises(ValueError, match="improve_steps=-1"):
        PARLConfig(improve_steps=-1)


def test_a_tiny_pa_rl_run_on_lift_color_completes_with_finite_metrics(features):
    policy = tiny_vla(features)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    task = TaskConfig(name="lift_color", reward="sparse", max_episode_steps=16)
    cfg = PARLConfig(
        num_samples=4, improve_steps=1, critic_hidden=64, batch_size=16, critic_updates=10,
        distill_updates=3, episodes_per_iteration=2, eval_episodes=2, policy_lr=1e-3,
    )  # fmt: skip
    metrics = pa_rl(policy, task, cfg, iterations=2)
    expected = {"return", "success", "critic_loss", "q_sample_mean", "q_sample_best", "q_chosen"}
    assert expected | {"distill_loss", "eval_success", "buffer_size"} == set(metrics)
    assert all(len(v) == 2 and all(math.isfinite(x) for x in v) for v in metrics.values())
    assert 0 < metrics["buffer_size"][0] < metrics["buffer_size"][1] <= 2 * 2 * 16 / N_EXEC
    q = zip(metrics["q_chosen"], metrics["q_sample_best"], metrics["q_sample_mean"], strict=True)
    assert all(chosen >= best >= mean for chosen, best, mean in q)
    changed = [k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])]
    assert changed  # distillation updated the VLA


def test_demonstrations_become_chunk_transitions_that_warm_up_the_critic(features, tmp_path):
    from robot_learning.collect import CollectConfig, collect
    from robot_learning.datasets import LeRobotDataset

    collect(CollectConfig(task=TaskConfig(name="lift_color"), episodes=2, out=str(tmp_path / "d")))
    policy = tiny_vla(features, action_range=2.0)
    g = 0.9
    demos = demo_chunks(policy, tmp_path / "d", g)
    episode = LeRobotDataset(tmp_path / "d").episode(0)
    length = len(episode["action"])
    success_at = int(np.flatnonzero(episode["next.success"].reshape(-1))[0])
    assert success_at == length - 1  # collect ends an episode at its success
    rows = np.arange(length)  # one chunk per frame of episode 0
    np.testing.assert_allclose(demos.chunk[0], episode["action"][:N_EXEC] / 2.0, atol=1e-6)
    np.testing.assert_allclose(
        demos.obs["observation.state"][rows, 0], episode["observation.state"]
    )
    assert demos.task[0] == str(episode["task"][0])
    # only the chunks that reach the success are rewarded (gamma**(k-1) at the k-th step of it)
    last = length - 1
    assert demos.done[last] == 1 and demos.done[: last - N_EXEC + 1].sum() == 0
    np.testing.assert_allclose(demos.reward[last - 1], g)  # success is its 2nd executed step
    np.testing.assert_allclose(demos.mc_return[0], g ** (length - 1), rtol=1e-5)
    # the critic fitted to those returns (warm start) ranks demonstrated chunks by them
    critic = ChunkCritic(policy, hidden=64)
    opt = torch.optim.Adam(critic.q.parameters(), lr=3e-3)
    cfg = PARLConfig(critic_warmup_updates=150, batch_size=32)
    everything = demos.get(np.arange(len(demos)))

    def error() -> float:
        s = critic_inputs(policy, everything["obs"])[0]
        with torch.no_grad():
            return (
                ((critic.min_q(s, everything["chunk"]) - everything["mc_return"]) ** 2)
                .mean()
                .item()
            )

    before = error()
    warmup_critic(policy, critic, demos, opt, cfg, np.random.default_rng(0))
    assert error() < 0.1 * before


def test_pa_rl_with_demonstrations_mixes_them_into_every_batch(features, tmp_path, monkeypatch):
    from policies.vla import pa_rl as module
    from robot_learning.collect import CollectConfig, collect

    collect(CollectConfig(task=TaskConfig(name="lift_color"), episodes=2, out=str(tmp_path / "d")))
    policy = tiny_vla(features)
    demos = demo_chunks(policy, tmp_path / "d", 0.99)
    seen = []
    distill = module.distill_chunks

    def spy(policy, batch, chunks, optimizer):
        seen.append((list(batch["task"]), chunks.clone()))
        return distill(policy, batch, chunks, optimizer)

    monkeypatch.setattr(module, "distill_chunks", spy)
    task = TaskConfig(name="lift_color", reward="sparse", max_episode_steps=8)
    cfg = PARLConfig(
        num_samples=2, improve_steps=0, critic_hidden=32, batch_size=8, critic_updates=2,
        critic_warmup_updates=3, distill_updates=2, episodes_per_iteration=1, demo_fraction=0.5,
    )  # fmt: skip
    metrics = pa_rl(policy, task, cfg, iterations=1, demos=demos)
    assert math.isfinite(metrics["critic_warmup_loss"][0])
    assert len(seen) == 2
    for tasks, chunks in seen:
        assert len(tasks) == 8
        # the demonstration half regresses onto demonstrated chunks (exactly those rows)
        demo_rows = chunks[4:, :N_EXEC].reshape(4, -1).numpy()
        stored = demos.chunk[: len(demos)].reshape(len(demos), -1)
        assert all(np.isclose(stored, row, atol=1e-6).all(1).any() for row in demo_rows)


def test_finetune_algo_pa_rl_improves_a_vla_checkpoint_from_the_cli(tmp_path, capsys):
    import json

    from robot_learning.cli import main
    from robot_learning.collect import CollectConfig, collect
    from robot_learning.policy import Policy
    from robot_learning.training import TrainConfig, train

    collect(CollectConfig(task=TaskConfig(name="lift_color"), episodes=2, out=str(tmp_path / "d")))
    base = train(TrainConfig(
        policy="vla", dataset=str(tmp_path / "d"), out=str(tmp_path / "vla"), steps=2,
        batch_size=8, warmup_steps=1, use_ema=False, policy_overrides={**TINY, "n_action_steps": 4},
    )).final_dir  # fmt: skip
    args = [
        "finetune", "algo=pa_rl", f"algo.base={base}", "task=lift_color", "task.reward=sparse",
        "task.max_episode_steps=8", f"demos={tmp_path / 'd'}", f"out={tmp_path / 'out'}",
        "eval_episodes=2", "algo.iterations=2", "algo.episodes_per_iteration=1",
        "algo.num_samples=2", "algo.critic_updates=2", "algo.critic_warmup_updates=2",
        "algo.distill_updates=1", "algo.batch_size=8", "algo.critic_hidden=16",
    ]  # fmt: skip
    assert main(args) == 0
    report = json.loads((tmp_path / "out" / "pa_rl.json").read_text())
    assert {"base_success", "final_success"} <= set(report) and report["demos"]
    assert len(report["metrics"]["return"]) == 2 and report["config"]["critic_warmup_updates"] == 2
    tuned, original = Policy.load(tmp_path / "out" / "final"), Policy.load(base)
    assert tuned.name == "vla"
    assert any(
        not torch.equal(a, b)
        for a, b in zip(tuned.state_dict().values(), original.state_dict().values(), strict=True)
    )
    assert "after PA-RL" in capsys.readouterr().out
    assert main(["finetune", "algo=pa_rl", "task=lift_color", f"out={tmp_path / 'x'}"]) != 0
    assert "needs algo.base=" in capsys.readouterr().err
    assert main([*args, "algo.num_samples=zero"]) != 0
    assert "algo.num_samples" in capsys.readouterr().err
