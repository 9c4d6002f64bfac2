"""Every command names the key, the expected type and the value of a bad override, suggests the
nearest valid key for a misspelt one (never Hydra's ``+key=`` advice) and rejects degenerate
settings (issue 12, items 4 and 6)."""

from __future__ import annotations

import pytest

from robot_learning.cli import main

#: command -> (required arguments, an int key, a float key, a bool key); {tmp} is a temp folder
COMMANDS = {
    "train": (["train", "policy=flow", "dataset={tmp}/d", "out={tmp}/o"], "steps", "lr", "use_ema"),
    "finetune": (
        ["finetune", "algo=sac", "task=reach", "out={tmp}/o"],
        "env_steps",
        "gamma",
        "resume",
    ),
    "collect": (["collect", "task=reach", "out={tmp}/o"], "episodes", None, "only_success"),
    "eval": (["eval", "checkpoint={tmp}/c"], "episodes", None, "video"),
    "export": (["export", "checkpoint={tmp}/c", "out={tmp}/o"], "steps", "control_rate_hz", "fp16"),
    "deploy": (["deploy", "bundle={tmp}/b"], "episodes", "control_rate_hz", "lockstep"),
    "bench sim": (["bench", "sim", "out={tmp}/o"], "state_steps", None, None),
    "bench train": (
        ["bench", "train", "preset=lift_state", "out={tmp}/o"],
        "steps",
        "lr",
        "resume",
    ),
    "bench inference": (["bench", "inference", "out={tmp}/o"], "calls", None, None),
    "bench ros": (["bench", "ros", "out={tmp}/o"], "steps", "control_rate_hz", None),
    "dataset visualize": (["dataset", "visualize", "{tmp}"], "episode", None, None),
    "dataset info": (["dataset", "info", "{tmp}"], None, None, "json"),
}


def _run(capsys, tmp_path, command: str, *extra: str) -> tuple[int, str]:
    """Exit code and stderr of ``robot-learning <command> <required args> <extra>``."""
    base = [a.replace("{tmp}", str(tmp_path)) for a in COMMANDS[command][0]]
    code = main([*base, *extra])
    return code, capsys.readouterr().err


def _flat(text: str) -> str:
    """``text`` on one line (rich wraps logged warnings to the terminal width)."""
    return " ".join(text.split())


def _cases(kind: int) -> list[tuple[str, str]]:
    return [(c, spec[kind]) for c, spec in COMMANDS.items() if spec[kind] is not None]


@pytest.mark.parametrize("command, key", _cases(1))
@pytest.mark.parametrize(
    "value, got",
    [
        ("abc", "got 'abc' (str)"),
        ("1.5", "got 1.5 (float)"),
        ("true", "got True (bool)"),
    ],
)
def test_int_setting_of_wrong_type(capsys, tmp_path, command, key, value, got):
    code, err = _run(capsys, tmp_path, command, f"{key}={value}")
    assert code == 2
    assert f"{key}={value}: expected an integer (int)" in err and got in err
    assert "not supported between" not in err


@pytest.mark.parametrize("command, key", _cases(2))
def test_float_setting_of_wrong_type(capsys, tmp_path, command, key):
    code, err = _run(capsys, tmp_path, command, f"{key}=abc")
    assert code == 2
    assert f"{key}=abc: expected a number (float)" in err and "got 'abc' (str)" in err


@pytest.mark.parametrize("command, key", _cases(3))
def test_bool_setting_takes_only_true_or_false(capsys, tmp_path, command, key):
    code, err = _run(capsys, tmp_path, command, f"{key}=1")
    assert code == 2
    assert f"{key}=1: expected true or false (bool), got 1 (int)" in err


def _misspelt(key: str) -> str:
    return key[:-2] + key[-1] + key[-2]  # steps -> stesp


@pytest.mark.parametrize("command, key", _cases(1))
def test_unknown_setting_suggests_nearest_and_never_plus(capsys, tmp_path, command, key):
    wrong = _misspelt(key)
    code, err = _run(capsys, tmp_path, command, f"{wrong}=10")
    assert code == 2
    assert f"unknown setting '{wrong}'" in err
    assert f"did you mean '{key}'?" in err
    assert "+" not in err


def test_train_misspelt_steps_message(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "train", "stpes=10")
    assert code == 2
    assert "unknown setting 'stpes' for train; did you mean 'steps'? valid settings:" in err
    assert "+stpes" not in err


def test_appended_unknown_setting_is_rejected_too(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "train", "+stpes=10")
    assert code == 2
    assert "unknown setting 'stpes'" in err and "did you mean 'steps'?" in err
    code, err = _run(capsys, tmp_path, "eval", "+episods=3")
    assert code == 2
    assert "did you mean 'episodes'?" in err


@pytest.mark.parametrize(
    "command, override, message",
    [
        (
            "train",
            "policy.down_dims=abc",
            "policy.down_dims=abc: expected a list of integers (tuple[int, ...]), got 'abc' (str)",
        ),
        (
            "train",
            "policy.down_dims=[32,1.5]",
            "policy.down_dims=[32, 1.5]: expected a list of integers",
        ),
        ("train", "policy.crop_ratio=abc", "policy.crop_ratio=abc: expected a number (float)"),
        ("finetune", "algo.tau=abc", "algo.tau=abc: expected a number (float), got 'abc' (str)"),
        ("finetune", "algo.hidden=[64,abc]", "algo.hidden=[64, abc]: expected a list of integers"),
        ("finetune", "algo.autotune=yes", "algo.autotune=yes: expected true or false (bool)"),
        (
            "finetune",
            "algo.encoder.shift_pad=1.5",
            "algo.encoder.shift_pad=1.5: expected an integer (int)",
        ),
        ("collect", "task.image_size=1.5", "task.image_size=1.5: expected an integer (int)"),
        ("finetune", "task.image_size=1.5", "task.image_size=1.5: expected an integer (int)"),
        (
            "collect",
            "task.hold_action.gripper=abc",
            "task.hold_action.gripper=abc: expected a number (float), got 'abc' (str)",
        ),
        (
            "collect",
            "task.randomization.friction=[0.8,abc]",
            "task.randomization.friction=[0.8, abc]: expected a list of 2 numbers",
        ),
    ],
)
def test_nested_setting_of_wrong_type(capsys, tmp_path, command, override, message):
    code, err = _run(capsys, tmp_path, command, override)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    "command, override, suggestion",
    [
        ("train", "policy.dwn_dims=[32,64]", "policy.down_dims"),
        ("finetune", "algo.tua=0.1", "algo.tau"),
        ("finetune", "algo.encoder.frezze=true", "algo.encoder.freeze"),
        ("collect", "task.rewrd=sparse", "task.reward"),
        ("collect", "task.randomization.frction=[0.8,1.2]", "task.randomization.friction"),
    ],
)
def test_unknown_nested_setting_suggests_nearest(capsys, tmp_path, command, override, suggestion):
    code, err = _run(capsys, tmp_path, command, override)
    assert code == 2
    assert f"did you mean '{suggestion}'?" in err
    assert "+" not in err


def test_entries_of_a_free_form_mapping_need_no_plus(capsys, tmp_path):
    """``task.hold_action`` defaults to ``{}``: its entries are set like any other key, and a
    wrong entry is the task's own error naming it."""
    code, err = _run(capsys, tmp_path, "collect", "task=reach", "task.hold_action.grip=1")
    assert code == 2
    assert "task.hold_action.grip: 'reach' has no action element 'grip'" in _flat(err)
    from robot_learning.config import load_config

    cfg = load_config("collect", ["task=reach", "task.hold_action.gripper=1"])
    assert dict(cfg.task.hold_action) == {"gripper": 1}


def test_task_field_without_a_task_says_to_choose_one(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "train", "task.reward=sparse")
    assert code == 2
    assert "choose it first, e.g. task=<name>" in err and "+" not in err


def test_group_selection_and_hydra_settings_still_work(capsys, tmp_path):
    """``policy=`` picks a group option; a bad option is still Hydra's 'could not find'."""
    code, err = _run(capsys, tmp_path, "train", "policy=meanflow", "steps=abc")
    assert code == 2 and "steps=abc: expected an integer" in err
    code, err = _run(capsys, tmp_path, "train", "policy=nope")
    assert code == 2 and "policy/nope" in err


def test_finetune_warmup_at_least_env_steps_is_an_error(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "finetune", "env_steps=1000", "warmup_steps=1000")
    assert code == 2
    assert "warmup_steps=1000 >= env_steps=1000" in err and "0 updates" in err
    assert "warmup_steps=<N below 1000>" in err


def test_finetune_default_warmup_follows_small_env_steps(monkeypatch, capsys, tmp_path):
    from robot_learning import rl

    seen = _stop_before_running(monkeypatch, rl, "finetune")
    assert _run(capsys, tmp_path, "finetune", "env_steps=1000")[0] == 2
    assert seen["cfg"].warmup_steps == 100


def _stop_before_running(monkeypatch, module, name: str) -> dict:
    """Replace ``module.name`` (the runner a command imports) with one that records its config and stops."""
    seen: dict = {}

    def fake(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        raise ValueError("stopped by the test")

    monkeypatch.setattr(module, name, fake)
    return seen


def test_train_short_run_works_with_default_warmup(monkeypatch, capsys, tmp_path):
    from robot_learning import training

    seen = _stop_before_running(monkeypatch, training, "train")
    code, err = _run(capsys, tmp_path, "train", "steps=20")
    assert code == 2 and "stopped by the test" in err
    assert seen["cfg"].steps == 20 and seen["cfg"].warmup_steps == 2
    assert _run(capsys, tmp_path, "train", "steps=20000")[0] == 2
    assert seen["cfg"].warmup_steps == 500


def test_train_explicit_warmup_at_least_steps_says_what_to_pass(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "train", "steps=20", "warmup_steps=20")
    assert code == 2
    assert "warmup_steps=20 must be in [0, steps=20)" in err
    assert "warmup_steps=<N below 20>" in err and "warmup_steps=null" in err


@pytest.mark.parametrize(
    "command, override, message",
    [
        ("collect", "seed=-1", "seed=-1 must be >= 0"),
        ("eval", "threads=0", "threads=0 must be >= 1"),
        ("export", "steps=0", "steps=0 must be >= 1"),
        ("deploy", "max_episode_steps=0", "max_episode_steps=0 must be >= 1"),
        ("finetune", "threads=0", "threads=0 must be >= 1"),
        ("finetune", "algo.actor_lr=0", "algo.actor_lr=0.0: learning rates must be > 0"),
        ("finetune", "algo.encoder.trunk=resnet", "algo.encoder.trunk='resnet' is not one of"),
        ("finetune", "algo.encoder.freeze=true", "freeze=true needs algo.encoder.pretrained"),
        (
            "finetune",
            "algo.encoder.shift_pad=-1",
            "algo.encoder needs feature_dim >= 1 and shift_pad",
        ),
        ("bench sim", "tasks=[]", "tasks=[]: nothing to time"),
        ("bench train", "threads=0", "threads=0 must be >= 1"),
    ],
)
def test_degenerate_settings_are_errors(capsys, tmp_path, command, override, message):
    code, err = _run(capsys, tmp_path, command, override)
    assert code == 2
    assert message in err


def test_dataset_options_are_typed(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "dataset visualize", "episode=-1")
    assert code == 2 and "episode=-1 must be >= 0" in err
    code, err = _run(capsys, tmp_path, "dataset visualize", "frame=3")
    assert code == 2 and "unknown setting 'frame' for dataset visualize" in err


def test_build_rules():
    """int rejects fractions and booleans but takes 1e4; float takes ints; str takes numbers."""
    from robot_learning.config import ConfigError, coerce

    assert coerce(1e4, int, "steps") == 10_000
    assert coerce(3, float, "lr") == 3.0 and isinstance(coerce(3, float, "lr"), float)
    assert coerce(2024, str, "out") == "2024"
    assert coerce([1, 2], tuple[int, ...], "dims") == (1, 2)
    assert coerce(None, int | None, "threads") is None
    for value, tp in ((1.5, int), (True, int), ("abc", int), (1, bool), (float("nan"), float)):
        with pytest.raises(ConfigError):
            coerce(value, tp, "key")


def test_train_types_are_checked_before_the_dataset_is_read(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, "train", "task=reach", "steps=abc")
    assert code == 2
    assert "steps=abc: expected an integer (int)" in err


def test_finetune_eval_every_beyond_env_steps_warns(monkeypatch, capsys, tmp_path):
    from robot_learning import rl

    seen = _stop_before_running(monkeypatch, rl, "finetune")
    code, err = _run(capsys, tmp_path, "finetune", "env_steps=1000", "eval_every=5000")
    assert code == 2 and seen["cfg"].eval_every == 5000
    assert "evaluated only at the start and the end" in _flat(err)


def test_residual_critic_warmup_beyond_the_run_warns(monkeypatch, capsys, tmp_path):
    from robot_learning import rl

    _stop_before_running(monkeypatch, rl, "finetune")
    args = ["algo=residual", f"algo.base={tmp_path}", "env_steps=1000"]
    code, err = _run(capsys, tmp_path, "finetune", *args)
    assert code == 2
    assert "the actor will never train" in _flat(err)


def test_collect_max_attempts_without_only_success_warns(monkeypatch, capsys, tmp_path):
    from robot_learning.cli import collect

    seen = _stop_before_running(monkeypatch, collect, "collect")
    code, err = _run(capsys, tmp_path, "collect", "episodes=2", "max_attempts=10")
    assert code == 2 and seen["cfg"].episodes == 2
    assert "max_attempts=10 has no effect without only_success=true" in _flat(err)
