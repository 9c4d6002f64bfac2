"""Config loading: Hydra YAML from the ``configs`` package plus ``key=value`` overrides.

Every CLI command composes one primary config (``configs/<command>.yaml``) with the user's
overrides; typed dataclasses (:class:`~robot_learning.envs.TaskConfig`, ...) are built from the
resolved result by :func:`build`, which checks every value against the field's annotation so that
invalid values fail with errors naming the key as the user types it (``policy.down_dims=abc:
expected a list of integers ...``). Unknown keys are reported with the nearest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from robot_learning.envs import TaskConfig


class ConfigError(ValueError):
    """A config or command-line override is invalid; the message says which and how to fix it."""


# ---------------------------------------------------------------------------------------------
# composing configs/<name>.yaml with overrides


def load_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose ``configs/<name>.yaml`` with Hydra-style ``key=value`` overrides.

    Unknown keys fail with the nearest valid key (never Hydra's ``+key=`` advice); group
    selections (``policy=flow``), ``hydra.*`` settings and ``+``/``~`` prefixes keep working.
    """
    bad = [o for o in overrides if "=" not in o and not o.startswith("~")]
    if bad:
        raise ConfigError(f"Arguments must be key=value overrides, got {bad}")
    overrides = with_config_dirs(list(overrides))
    try:
        return _compose(name, list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        opened = _open_mapping_overrides(name, list(overrides))
        if opened != list(overrides):
            try:
                return _compose(name, opened)
            except (HydraException, OmegaConfBaseException):
                pass
        _diagnose(name, list(overrides))
        raise ConfigError(f"Invalid overrides for '{name}': {_without_append_advice(exc)}") from exc


CONFIG_DIR_KEY = "config_dir"


def with_config_dirs(overrides: list[str]) -> list[str]:
    """``overrides`` with each ``config_dir=DIR`` turned into a Hydra search path, so that
    ``DIR/task/<name>.yaml`` (and any other group's YAML there) can be chosen like the built-in
    ones; a missing folder is an error naming it."""
    dirs, rest = [], []
    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+") != CONFIG_DIR_KEY:
            rest.append(o)
            continue
        for item in value.strip("[]").split(","):
            path = Path(item.strip()).expanduser().resolve()
            if not path.is_dir():
                raise ConfigError(
                    f"config_dir={item.strip()}: no such folder (it should hold e.g. task/<name>.yaml)"
                )
            dirs.append(f"file://{path}")
    if not dirs:
        return rest
    return [*rest, f"hydra.searchpath=[{','.join(dirs)}]"]


def _compose(name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_module(config_module="configs", version_base=None):
        return compose(config_name=name, overrides=overrides)


def _without_append_advice(exc: Exception) -> str:
    """Hydra's message minus its ``To append to your config use +key=...`` line."""
    lines = [line for line in str(exc).splitlines() if "use +" not in line]
    return " ".join(line.strip() for line in lines if line.strip())


def config_groups() -> set[str]:
    """Config groups of the ``configs`` package (folders such as ``policy``, ``task``, ``algo``)."""
    root = resources.files("configs")
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")}


def _selection_base(name: str, overrides: list[str], parsed: list) -> DictConfig | None:
    """``configs/<name>.yaml`` with only the group selections and ``hydra.*`` settings of
    ``overrides`` applied (None when those fail: Hydra's own message then names the problem)."""
    groups = config_groups()
    selection = [
        text
        for text, o in zip(overrides, parsed, strict=True)
        if o.key_or_group.startswith("hydra.") or o.key_or_group.split("@")[0] in groups
    ]
    try:
        return _compose(name, selection)
    except (HydraException, OmegaConfBaseException):
        return None


def _diagnose(name: str, overrides: list[str]) -> None:
    """Raise a :class:`ConfigError` naming the first override whose key ``name`` cannot take."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(f"Invalid override syntax: {_without_append_advice(exc)}") from None
    base = _selection_base(name, overrides, parsed)
    if base is None:
        return
    groups = config_groups()
    for o in parsed:
        key = o.key_or_group
        if o.is_add() or key.startswith("hydra.") or key.split("@")[0] in groups:
            continue
        check_key(base, key, name, groups)


def _open_mapping_overrides(name: str, overrides: list[str]) -> list[str]:
    """``overrides`` with ``++`` before each one that sets an entry of a free-form mapping (a field
    whose YAML default is ``{}``, such as ``task.hold_action`` or ``task.gym_kwargs``), so that
    ``task.hold_action.gripper=1`` works without Hydra's ``+``."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return overrides
    base = _selection_base(name, overrides, parsed)
    if base is None:
        return overrides
    groups = config_groups()
    out = []
    for text, o in zip(overrides, parsed, strict=True):
        key = o.key_or_group
        if not (o.is_add() or o.is_force_add() or o.is_delete() or key.split("@")[0] in groups):
            node: Any = base
            for part in key.split("."):
                if _is_free_mapping(node):
                    text = "++" + text
                    break
                if not isinstance(node, DictConfig) or part not in node:
                    break
                node = node[part] if not OmegaConf.is_missing(node, part) else None
            else:
                if _is_free_mapping(node):
                    text = "++" + text
        out.append(text)
    return out


def _is_free_mapping(node: Any) -> bool:
    return isinstance(node, DictConfig) and not node._is_none() and len(node) == 0


def check_key(cfg: DictConfig, key: str, where: str, groups: set[str] = frozenset()) -> None:
    """Raise a :class:`ConfigError` unless the dotted ``key`` exists in ``cfg``, suggesting the nearest.

    ``groups`` are config groups: a dotted key into one that ``cfg`` has not chosen (``task.reward``
    without ``task=<name>``) says to choose it first.
    """
    node: Any = cfg
    parts = key.split(".")
    if len(parts) > 1 and parts[0] in groups and parts[0] not in cfg:
        node = OmegaConf.create({parts[0]: None})
    for depth, part in enumerate(parts):
        prefix = ".".join(parts[:depth])
        if node is None:
            raise ConfigError(
                f"'{key}' sets a field of '{prefix}', which is not chosen for {where}; "
                f"choose it first, e.g. {prefix}=<name> {key}=..."
            )
        if not isinstance(node, DictConfig):
            raise ConfigError(
                f"'{key}': '{prefix}' is a single value, not a group of settings; use {prefix}=<value>"
            )
        valid = [str(k) for k in node.keys()]  # noqa: SIM118 (``in`` is False for ``???`` values)
        if part not in valid:
            raise ConfigError(
                unknown_key_message(part, valid, where, prefix + "." if prefix else "")
            )
        node = node[part] if not OmegaConf.is_missing(node, part) else {}


def unknown_key_message(key: str, valid: list[str], where: str, prefix: str = "") -> str:
    """``unknown setting 'stpes' for train; did you mean 'steps'? valid settings: ...``."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ";"
    scope = f"{prefix}* settings" if prefix else "settings"
    return (
        f"unknown setting '{prefix}{key}' for {where}{hint} "
        f"valid {scope}: {', '.join(prefix + k for k in valid)}"
    )


def reject_unknown(data: dict[str, Any], valid: list[str], where: str) -> None:
    """Raise a :class:`ConfigError` naming the first key of ``data`` (e.g. added with ``+key=``) not in ``valid``."""
    for key in data:
        if key not in valid:
            raise ConfigError(unknown_key_message(key, list(valid), where))


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Resolved plain-dict copy of a config; missing mandatory values (``???``) are an error."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"Missing required settings {missing}; pass them as key=value")
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def take_setting(args: list[str], key: str) -> tuple[list[str], str | None]:
    """``args`` without ``key=value``, and that value (None when absent or null). For settings
    named like a config group (``policy=DIR`` beside the zoo's ``configs/policy/``), which Hydra
    would read as a group choice."""
    rest, value = [], None
    for arg in args:
        name, sep, text = arg.partition("=")
        if sep and name.lstrip("+") == key:
            value = text if text not in ("", "null", "None") else None
        else:
            rest.append(arg)
    return rest, value


#: top-level keys of the commands' configs that set ``task.<key>`` when given
TASK_SHORTHANDS = ("backend", "obs", "instruction")


def task_config(cfg: DictConfig) -> TaskConfig:
    """The :class:`TaskConfig` of a composed command config (``task`` group + shorthands)."""
    data = to_container(cfg)
    task = dict(data["task"])
    for shorthand in TASK_SHORTHANDS:
        if data.get(shorthand) is not None:
            task[shorthand] = data[shorthand]
    return build(TaskConfig, task, where="task", prefix="task.")


# ---------------------------------------------------------------------------------------------
# typed dataclass construction


def build(cls: type, values: dict[str, Any], where: str, prefix: str = "") -> Any:
    """``cls(**values)`` after checking every value against the field's type annotation.

    ``where`` names the command or section in messages (``train``); ``prefix`` is prepended to
    keys so they read as typed on the command line (``policy.``, ``algo.``, ``task.``). Ints reject
    fractions, strings and booleans; floats take ints; bools take only true/false; nested
    dataclasses are built from mappings. A wrong type, an unknown key or a value the dataclass
    rejects raises :class:`ConfigError`.
    """
    checked = check_values(cls, values, where, prefix)
    try:
        return cls(**checked)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {where} settings: {exc}") from exc


def check_values(cls: type, values: dict[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """``values`` checked against the fields of the dataclass ``cls`` (see :func:`build`) without
    constructing it; returns the converted values. Unknown keys and wrong types are errors."""
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise ConfigError(unknown_key_message(unknown[0], fields, where, prefix))
    return check_types(values, _type_hints(cls), prefix)


def check_types(values: dict[str, Any], types_: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Each of ``values`` checked against (and converted to) its annotation in ``types_``."""
    return {k: coerce(v, types_.get(k, Any), prefix + k) for k, v in values.items()}


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation only importable under TYPE_CHECKING
        return {}


def coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against (and converted to) the annotation ``tp``; errors name ``key``."""
    try:
        return _coerce(value, tp, key)
    except _Mismatch:
        raise ConfigError(
            f"{key}={show(value)}: expected {describe(tp)}, got {value!r} ({type(value).__name__})"
        ) from None


class _Mismatch(Exception):
    """Internal: the value does not fit the annotation."""


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, args, key)
    if origin is typing.Literal:
        if value not in args:
            raise _Mismatch
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise _Mismatch
        return build(tp, value, where=key, prefix=key + ".")
    if origin in (tuple, list) or tp in (tuple, list):
        return _coerce_sequence(value, origin or tp, args, key)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        if len(args) == 2:
            return {k: coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
        return value
    if isinstance(tp, type):
        return _coerce_scalar(value, tp)
    return value  # an annotation this checker does not understand: the dataclass decides


def _coerce_union(value: Any, args: tuple, key: str) -> Any:
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:
        return _coerce(value, options[0], key)
    for arg in options:
        try:
            return _coerce(value, arg, key)
        except _Mismatch:
            continue
    raise _Mismatch


def _coerce_sequence(value: Any, kind: type, args: tuple, key: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise _Mismatch
        items = [_coerce(v, a, key) for v, a in zip(value, args, strict=True)]
    else:
        items = [_coerce(v, args[0] if args else Any, key) for v in value]
    return tuple(items) if kind is tuple else items


def _coerce_scalar(value: Any, tp: type) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise _Mismatch
        return value
    if tp is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, float) and value.is_integer():
            return int(value)  # steps=1e4
        if not isinstance(value, int):
            raise _Mismatch
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise _Mismatch
        return float(value)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float, os.PathLike)):
            raise _Mismatch
        return str(value)  # out=2024 is a folder name; Path objects from Python callers
    if not isinstance(value, tp):
        raise _Mismatch
    return value


def describe(tp: Any) -> str:
    """Human name of an annotation: ``an integer (int)``, ``a list of numbers (tuple[float, ...])``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        named = [describe(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} settings"
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {_plural(args[0])} ({_type_name(tp)})"
        return f"a list of {_plural(args[0]) if args else 'values'} ({_type_name(tp)})"
    if origin is dict or tp is dict:
        return f"a mapping ({_type_name(tp)})"
    return _SCALARS.get(tp, f"a {_type_name(tp)}")


_SCALARS = {
    int: "an integer (int)",
    float: "a number (float)",
    bool: "true or false (bool)",
    str: "a string (str)",
}


def _plural(tp: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(tp, "values")


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def show(value: Any) -> str:
    """``value`` spelled as on the command line (``true``, ``null``, ``[1, 2]``, ``abc``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def recorded_setting(run_dir: str | Path, filename: str, key: str) -> Any:
    """``key`` of the resolved config a run recorded in ``run_dir/filename`` (None if absent)."""
    try:
        return json.loads((Path(run_dir) / filename).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
