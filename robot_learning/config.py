"""Config loading: Hydra YAML from the ``configs`` package plus ``key=value`` overrides.

Every CLI command composes one primary config (``configs/<command>.yaml``) with the user's
overrides; typed dataclasses (:class:`~robot_learning.envs.TaskConfig`, ...) are built from the
resolved result so that invalid values fail with errors naming the field.
"""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from robot_learning.envs import TaskConfig


class ConfigError(ValueError):
    """A config or command-line override is invalid; the message says which and how to fix it."""


def load_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose ``configs/<name>.yaml`` with Hydra-style ``key=value`` overrides."""
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"Arguments must be key=value overrides, got {bad}")
    try:
        with initialize_config_module(config_module="configs", version_base=None):
            cfg = compose(config_name=name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"Invalid overrides for '{name}': {exc}") from exc
    return cfg


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Resolved plain-dict copy of a config; missing mandatory values (``???``) are an error."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"Missing required settings {missing}; pass them as key=value")
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def task_config(cfg: DictConfig) -> TaskConfig:
    """The :class:`TaskConfig` of a composed command config (``task`` group + shorthands)."""
    data = to_container(cfg)
    task = dict(data["task"])
    for shorthand in ("backend", "obs"):
        if data.get(shorthand) is not None:
            task[shorthand] = data[shorthand]
    try:
        return TaskConfig.from_dict(task)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Invalid task config: {exc}") from exc
