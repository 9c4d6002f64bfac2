"""The Isaac Gym adapter (sim/isaacgym) against the fake ``isaacgym`` of tests/fakes, and the
project's gymapi calls type-checked against the ``isaacgym-stubs`` package."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_task_registry import check_contract

from robot_learning.cli import main
from robot_learning.config import load_config, task_config
from robot_learning.env_threads import EnvThreads, step_envs
from robot_learning.envs import TaskConfig, make_env, make_envs, make_expert
from robot_learning.evaluation import EvalConfig, evaluate

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "tests" / "fakes"


@pytest.fixture(autouse=True)
def fake_isaacgym(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))


def _cfg(**overrides) -> TaskConfig:
    cfg = task_config(load_config("collect", ["task=isaacgym_cartpole", "out=x"]))
    return TaskConfig.from_dict({**cfg.__dict__, **overrides})


def _rollout(env, seed: int, actions: np.ndarray) -> list[np.ndarray]:
    """Observations of one episode (at most ``len(actions)`` steps), and the step that ended it."""
    obs, _ = env.reset(seed=seed)
    seen = [obs["observation.state"]]
    for a in actions:
        obs, _, terminated, truncated, _ = env.step(a)
        seen.append(obs["observation.state"])
        if terminated or truncated:
            break
    return seen


def test_task_contract_with_the_fake():
    check_contract(make_env(_cfg()), pixels=False)


def test_views_of_one_batch_reproduce_a_single_env():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.5, 0.5, size=(3, 15, 1)).astype(np.float32)
    alone = make_env(_cfg())
    expected = [_rollout(alone, 40 + e, actions[e]) for e in range(3)]
    alone.close()
    views = make_envs(_cfg(), 3)
    assert len({id(v.batch) for v in views}) == 1 and views[0].batch.num_envs == 3
    got = [[v.reset(seed=40 + e)[0]["observation.state"]] for e, v in enumerate(views)]
    threads = EnvThreads(1)
    for t in range(15):
        results = step_envs(threads, views, [actions[e, t] for e in range(3)])
        for e, result in enumerate(results):
            if len(got[e]) < len(expected[e]):  # (an env's episode may end before the others')
                got[e].append(result[0]["observation.state"])
    for e in range(3):
        np.testing.assert_allclose(np.stack(got[e]), np.stack(expected[e]), atol=1e-6)
    assert len(expected[0]) > 5
    with pytest.raises(RuntimeError, match="step them together"):
        views[0].step(actions[0, 0])
    views[0].close()


def test_resets_and_steps_leave_the_callers_generator_alone():
    views = make_envs(_cfg(vec_task_cfg={"env": {"maxEpisodeLength": 4}}), 2)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first = views[0].reset(seed=1)[0]["observation.state"]
    for _ in range(6):  # env 1 idles, times out and resets itself inside VecTask.step
        step_envs(EnvThreads(1), views[:1], [np.zeros(1, np.float32)])
    assert torch.equal(torch.rand(3), expected)
    assert not np.array_equal(first, views[0].reset(seed=2)[0]["observation.state"])
    views[0].close()


def test_rl_resume_mid_episode_on_batched_views_is_exact(tmp_path):
    from safetensors.numpy import load_file

    from robot_learning.rl import FinetuneConfig, finetune
    from robot_learning.rl.learner_state import REPLAY_FILE

    def run(out, **kw):
        base = dict(task=_cfg(), out=str(out), algo="sac", num_envs=2, env_steps=160)
        base |= dict(warmup_steps=40, batch_size=16, eval_every=0, eval_episodes=1)
        base |= dict(save_every=60, threads=1, algo_overrides={"hidden": [16, 16]})
        return finetune(FinetuneConfig(**{**base, **kw}))

    run(tmp_path / "straight")
    run(tmp_path / "resumed", env_steps=60)  # stops mid-episode
    run(tmp_path / "resumed", resume=True)
    a, b = (tmp_path / n / "checkpoints" / "last" / REPLAY_FILE for n in ("straight", "resumed"))
    replay_a, replay_b = load_file(str(a)), load_file(str(b))
    assert replay_a.keys() == replay_b.keys()
    for key in replay_a:
        np.testing.assert_array_equal(replay_a[key], replay_b[key], err_msg=key)


def _until_done(env, act) -> tuple[int, tuple]:
    obs, _ = env.reset(seed=0)
    for steps in range(1, 1000):
        result = env.step(act(obs))
        obs = result[0]
        if result[2] or result[3]:
            return steps, result
    raise AssertionError("the episode never ended")


def test_time_out_truncates_with_success_and_a_fall_terminates():
    env = make_env(_cfg(vec_task_cfg={"env": {"maxEpisodeLength": 30}}))
    expert = make_expert(env)
    steps, (obs, reward, terminated, truncated, info) = _until_done(env, expert.act)
    assert (steps, terminated, truncated, info["is_success"]) == (29, False, True, True)
    # pushing one way the whole time drops the pole
    steps, (obs, reward, terminated, truncated, info) = _until_done(
        env, lambda obs: np.ones(1, np.float32)
    )
    assert terminated and not truncated and not info["is_success"] and steps < 29
    assert reward == -2.0
    env.close()
    sparse = make_env(_cfg(reward="sparse", max_episode_steps=5))
    sparse.reset(seed=0)
    results = [sparse.step(np.zeros(1, np.float32)) for _ in range(5)]
    assert [r[1] for r in results] == [0.0] * 5 and results[-1][3]  # the adapter's own limit
    sparse.close()


class _LinearPolicy:
    """A deterministic state-feedback source (the cart-pole expert's law) for ``evaluate``."""

    name, runtime, n_obs_steps, n_action_steps = "linear", "numpy", 1, 1
    input_keys = ("observation.state",)
    control_rate_hz = None

    def __init__(self, features) -> None:
        self.features = features

    def predict_chunk(self, batch):
        state = batch["observation.state"][:, -1]
        gains = np.array([0.05, 0.1, 2.0, 0.3])
        return np.clip(state @ gains, -1, 1)[:, None, None].astype(np.float32)

    def reseed(self, seed: int) -> None:
        pass

    def refine(self, obs, action):
        return action


@pytest.mark.parametrize("num_envs", [1, 3])
def test_evaluation_runs_on_batched_views_with_the_same_episodes(num_envs):
    cfg = _cfg(vec_task_cfg={"env": {"maxEpisodeLength": 40}})
    source = _LinearPolicy(make_env(cfg).features)
    result = evaluate(source, EvalConfig(task=cfg, episodes=5, num_envs=num_envs, seed=3))
    assert result.seeds == [3, 4, 5, 6, 7]
    assert result.successes == [True] * 5 and result.lengths == [39] * 5
    reference = evaluate(source, EvalConfig(task=cfg, episodes=5, num_envs=1, seed=3))
    np.testing.assert_allclose(result.returns, reference.returns, rtol=1e-5)


def test_collect_and_rl_finetune_from_the_cli(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "sac"
    common = ["task=isaacgym_cartpole", "task.vec_task_cfg={env: {maxEpisodeLength: 25}}"]
    assert main(["collect", *common, "episodes=2", f"out={data}"]) == 0
    assert json.loads((data / "collect.json").read_text())["success_rate"] == 1.0
    args = ["finetune", "algo=sac", *common, f"out={run}", "env_steps=120", "num_envs=2"]
    args += ["warmup_steps=40", "batch_size=16", "eval_every=0", "eval_episodes=2"]
    assert main(args) == 0
    summary = json.loads((run / "finetune.json").read_text())
    assert summary["env_steps"] >= 120 and "final_eval" in summary


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"obs": "pixels"}, "obs=pixels"),
        ({"vec_task": "nope"}, "not a registered Isaac Gym task"),
        ({"vec_task": "no.such.module:Task"}, "cannot be imported"),
        ({"vec_task": "sim.isaacgym.vec_task:VecTask"}, r"missing sections \['env', 'sim'\]"),
        ({"randomization": {"friction": [0.5, 1.0]}}, "task.randomization.friction"),
    ],
)
def test_bad_settings_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_env(_cfg(**overrides))


def test_bad_config_fields_are_named():
    with pytest.raises(ValueError, match="needs vec_task"):
        TaskConfig(name="x", backend="isaacgym")
    with pytest.raises(ValueError, match="task.vec_task applies to backend=isaacgym only"):
        TaskConfig(name="lift", vec_task="cartpole")


def test_without_isaacgym_the_error_says_how_to_install_it(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "MUJOCO_GL": "osmesa"}
    out = subprocess.run(
        [sys.executable, "-m", "robot_learning.cli", "collect", "task=isaacgym_cartpole"]
        + ["episodes=1", f"out={tmp_path / 'd'}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert out.returncode != 0
    assert "needs NVIDIA Isaac Gym" in out.stderr and "Traceback" not in out.stderr


MYPY_CONFIG = """[mypy]
ignore_missing_imports = True
follow_imports = silent
[mypy-torch.*,numpy.*,robot_learning.*,gymnasium.*]
follow_imports = skip
[mypy-isaacgym.*]
ignore_errors = True
"""


def _mypy(stubs: Path, *paths: str) -> subprocess.CompletedProcess:
    config = stubs / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-incremental", *paths],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"MYPYPATH": str(stubs), "PATH": str(Path(sys.executable).parent)},
        timeout=300,
    )


def test_gymapi_calls_type_check_against_isaacgym_stubs(tmp_path):
    pytest.importorskip("mypy")
    import importlib.util

    spec = importlib.util.find_spec("isaacgym-stubs")
    if spec is None:
        pytest.skip("isaacgym-stubs is not installed (pip install -e '.[dev]')")
    package = Path(spec.submodule_search_locations[0])
    stubs = tmp_path / "isaacgym"
    stubs.mkdir()
    # the published stubs declare a property named `lambda`, which no parser accepts
    text = (package / "gymapi.pyi").read_text().replace("def lambda(", "def lambda_(")
    (stubs / "gymapi.pyi").write_text(text)
    (stubs / "__init__.pyi").write_text("")
    shutil.copy(ROOT / "tests" / "stubs" / "gymtorch.pyi", stubs / "gymtorch.pyi")
    checked = _mypy(tmp_path, "sim/isaacgym")
    assert checked.returncode == 0, checked.stdout
    wrong = tmp_path / "wrong.py"  # the check has teeth: a wrong call fails it
    wrong.write_text(
        "from isaacgym import gymapi\n"
        "gym = gymapi.acquire_gym()\n"
        "gym.create_env(gymapi.Vec3(), gymapi.Vec3(), 2)\n"
    )
    assert _mypy(tmp_path, str(wrong)).returncode == 1
