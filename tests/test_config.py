"""Config composition and the errors a user sees for bad overrides."""

import pytest

from robot_learning.cli import main
from robot_learning.config import ConfigError, load_config, task_config
from robot_learning.envs import TaskConfig


def test_task_group_and_shorthands():
    cfg = task_config(
        load_config("collect", ["task=lift", "obs=pixels", "backend=pybullet", "out=x"])
    )
    assert (cfg.name, cfg.obs, cfg.backend, cfg.image_size) == ("lift", "pixels", "pybullet", 96)
    cfg = task_config(
        load_config(
            "collect",
            ["task=pusht", "task.reward=sparse", "task.randomization.friction=[0.8,1.2]", "out=x"],
        )
    )
    assert cfg.reward == "sparse" and cfg.randomization.friction == (0.8, 1.2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task=nope", "out=x"], "nope"),
        (["bogus=1", "out=x"], "bogus"),
        (["obs=depth", "out=x"], "obs='depth'"),
        (["positional"], "key=value"),
        (["task.randomization.mass=[2,1]", "out=x"], "randomization.mass"),
    ],
)
def test_bad_overrides_name_the_problem(overrides, message):
    with pytest.raises((ConfigError, ValueError), match=message.replace("[", r"\[")):
        task_config(load_config("collect", overrides))


def test_missing_out_is_reported():
    from robot_learning.config import to_container

    with pytest.raises(ConfigError, match="out"):
        to_container(load_config("collect", []))


def test_unknown_task_keys_rejected():
    with pytest.raises(ValueError, match="colour"):
        TaskConfig.from_dict({"name": "lift", "colour": "red"})


def test_cli_unknown_command_and_help(capsys):
    assert main(["frobnicate"]) == 2
    assert "Unknown command 'frobnicate'" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "collect" in capsys.readouterr().out


def test_cli_collect_bad_override_exit_code(capsys):
    assert main(["collect", "task=lift", "obs=depth", "out=/tmp/never"]) == 2
    assert "obs='depth'" in capsys.readouterr().err
