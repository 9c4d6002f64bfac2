"""Registry: registration, duplicate and unknown names, lazy discovery."""

import pytest

from robot_learning.envs import EXPERTS, TASKS, task_names
from robot_learning.registry import Registry, RegistryError


def test_register_get_and_errors():
    reg: Registry[type] = Registry("widget")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A
    assert reg.names() == ["a"] and "a" in reg
    with pytest.raises(RegistryError, match="Unknown widget 'b'. Available: a"):
        reg.get("b")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a")(type("Other", (), {}))
    reg.unregister("a")
    assert "a" not in reg


def test_discovery_imports_plugin_modules():
    reg = Registry("thing", discover=("json",))
    assert "x" not in reg  # triggers discovery without error
    assert reg._discovered


def test_every_suite_task_is_registered_with_an_expert():
    names = task_names("mujoco")
    for task in ("reach", "lift", "peg_insert", "pusht"):
        assert task in names
        assert task in EXPERTS
    assert {"reach", "lift"} <= set(task_names("pybullet"))
    assert "gymnasium/adapter" in TASKS.names()
