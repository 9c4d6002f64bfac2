"""``--help`` for every command and subcommand, generated from the YAML and the dataclasses."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from robot_learning.cli import COMMANDS, main
from robot_learning.cli.help import HELP, group_options, group_rows, option_rows, setting_rows
from robot_learning.cli.help_specs import register_all

register_all()
SPECS = [
    (name, sub, spec)
    for name, top in HELP.items()
    for sub, spec in ([(None, top)] + list(top.subcommands.items()))
]


def _ids():
    return [f"{name} {sub}" if sub else name for name, sub, _ in SPECS]


def test_every_registered_command_has_help():
    assert set(COMMANDS.names()) == set(HELP)


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS.names():
        assert f"\n  {name} " in out, name


@pytest.mark.parametrize(("name", "sub", "spec"), SPECS, ids=_ids())
def test_help_lists_every_setting_with_a_meaning(name, sub, spec, capsys):
    args = [name, *([sub] if sub else []), "--help"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: robot-learning {spec.usage}")
    if spec.config is not None:
        import importlib.resources as resources

        text = (resources.files("configs") / f"{spec.config}.yaml").read_text()
        keys = [k for k in yaml.safe_load(text) if k != "defaults"]
        rows = {key: meaning for key, _, meaning in setting_rows(spec)}
        assert list(rows) == keys  # every setting of the YAML, in order
        assert [k for k, meaning in rows.items() if not meaning] == []
        for key in keys:
            assert f"  {key} " in out, key
    if spec.options is not None:
        for field, meaning in option_rows(spec.options):
            assert f"  {field.name} " in out and meaning, field.name
    for sub_name in spec.subcommands:
        assert f"  {sub_name} " in out


@pytest.mark.parametrize(
    ("group", "to_class"),
    [(g, c) for _, _, spec in SPECS for g, c in spec.groups.items()],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_group_option_documents_every_field(group, to_class):
    for option in group_options(group):
        cls = to_class(option)
        if cls is None:  # a preset: documented by its header comment
            from robot_learning.cli.help import preset_summary

            assert preset_summary(group, option), (group, option)
            continue
        rows = group_rows(group, option, cls)
        assert rows, (group, option)
        assert [k for k, _, meaning in rows if not meaning] == [], (group, option)
        names = {k.split(".")[1] for k, _, _ in rows}
        assert {f.name for f in dataclasses.fields(cls)} - {"name"} <= names


def test_help_shows_the_chosen_group_option(capsys):
    assert main(["train", "--help", "policy=diffusion"]) == 0
    out = capsys.readouterr().out
    assert "policy.num_train_timesteps" in out and "settings of policy=diffusion" in out


def test_cfg_prints_the_resolved_config_without_running(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["train", "policy=flow", "dataset=/x", f"out={out}", "steps=20", "--cfg"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["steps"] == 20 and printed["policy"]["name"] == "flow"
    assert not out.exists()
    assert main(["finetune", "task=reach", "algo=td3", "print_config=true"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["algo"]["name"] == "td3"
    assert main(["bench", "sim", "--cfg"]) == 0
    assert "state_steps" in capsys.readouterr().out
    assert main(["dataset", "info", "--cfg"]) == 2  # no config file: says so
    assert "--help" in capsys.readouterr().err


def test_cpu_preset_sizes_the_run_and_the_command_line_wins(capsys):
    base = ["train", "policy=flow", "dataset=/x", "out=/y", "recipe=cpu", "--cfg"]
    assert main(base) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["policy"]["down_dims"] == [64, 128, 256] and cfg["threads"] == 1
    assert main([*base, "steps=123", "policy.down_dims=[32,64]"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["steps"] == 123 and cfg["policy"]["down_dims"] == [32, 64]
