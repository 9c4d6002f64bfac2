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


def test_entry_point_plugins_load_on_first_lookup_and_a_broken_one_is_named(monkeypatch, tmp_path):
    """A group's entry point names a module; importing it runs its decorators."""
    import sys
    import types
    from importlib.metadata import EntryPoint

    import robot_learning.registry as registry_module

    demo = Registry("demo thing", entry_points="robot_learning.demo")
    host = types.ModuleType("demo_registry_host")
    host.demo = demo
    monkeypatch.setitem(sys.modules, "demo_registry_host", host)
    (tmp_path / "demo_plugin_module.py").write_text(
        "from demo_registry_host import demo\n\n\n@demo.register('thing')\nclass Thing:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = {
        "robot_learning.demo": [EntryPoint("demo", "demo_plugin_module", "robot_learning.demo")],
        "robot_learning.broken": [
            EntryPoint("broken", "no_such_plugin_module_xyz", "robot_learning.broken")
        ],
    }
    monkeypatch.setattr(registry_module, "entry_points", lambda group: plugins.get(group, []))
    assert "demo_plugin_module" not in sys.modules
    assert demo.get("thing").__module__ == "demo_plugin_module"
    bad = Registry("demo thing", entry_points="robot_learning.broken")
    with pytest.raises(RegistryError, match="plugin 'broken' .*no_such_plugin_module_xyz"):
        bad.names()
    monkeypatch.delitem(sys.modules, "demo_plugin_module")
