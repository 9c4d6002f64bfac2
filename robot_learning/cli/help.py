"""``robot-learning <command> --help`` and ``--cfg``, generated from the config YAML and the dataclasses.

Nothing here is written by hand per setting: the settings, their defaults and the config groups
come from ``configs/<command>.yaml``; each setting's meaning is its inline YAML comment or, when
the YAML has none, the attribute docstring of the typed dataclass field it fills. So the help
cannot drift from what a command accepts (``tests/test_help.py`` checks every command).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from importlib import resources
from typing import Any

from omegaconf import OmegaConf

#: a function naming the dataclass that describes a group option's fields (``flow`` -> FlowConfig)
GroupClass = Callable[[str], type | None]


@dataclass(frozen=True)
class CommandHelp:
    """What ``--help`` says about one command (or subcommand)."""

    usage: str
    """The usage line after ``robot-learning``."""
    summary: str
    """One or two sentences on what the command does."""
    config: str | None = None
    """``configs/<config>.yaml`` holding the settings (None: the command takes none)."""
    classes: tuple[type, ...] = ()
    """Typed dataclasses whose field docstrings describe settings the YAML does not comment."""
    groups: dict[str, GroupClass] = field(default_factory=dict)
    """Config groups whose options' fields are settable as ``<group>.<field>=``."""
    options: type | None = None
    """For commands without YAML (``dataset``, ``bundle``): the dataclass of their options."""
    subcommands: dict[str, CommandHelp] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[list[str]], list[str]] | None = None
    """Drops arguments the command takes out before Hydra sees them (``teleop``'s ``policy=DIR``
    and ``device.<option>=``), so ``--cfg`` composes what the command itself would."""
    """Group option whose fields ``--help`` lists when the group has no default (``task: lift``)."""


#: command name -> its help (each command module registers its own)
HELP: dict[str, CommandHelp] = {}


def wants_help(args: list[str]) -> bool:
    """True when the arguments ask for help (``-h``/``--help``, anywhere)."""
    return any(a in ("-h", "--help") for a in args)


def wants_config(args: list[str]) -> bool:
    """True when the arguments ask for the resolved config (``--cfg`` or ``print_config=true``)."""
    return any(a == "--cfg" or a.lower() == "print_config=true" for a in args)


def without_flags(args: list[str]) -> list[str]:
    """``args`` minus the help/config flags."""
    drop = ("-h", "--help", "--cfg")
    return [a for a in args if a not in drop and not a.lower().startswith("print_config=")]


def resolve(name: str, args: list[str]) -> tuple[str, CommandHelp]:
    """The (sub)command help that ``name args`` refers to, with its full name."""
    spec = HELP[name]
    positional = [a for a in without_flags(args) if "=" not in a]
    if spec.subcommands and positional and positional[0] in spec.subcommands:
        return f"{name} {positional[0]}", spec.subcommands[positional[0]]
    return name, spec


# --------------------------------------------------------------------------- rendering
def render(name: str, spec: CommandHelp, args: list[str] = ()) -> str:
    """The whole ``--help`` text of a command."""
    lines = [f"usage: robot-learning {spec.usage}", "", _wrap(spec.summary, 0)]
    if spec.subcommands:
        lines += ["", "subcommands (robot-learning " + name + " <subcommand> --help for each):"]
        width = max(len(s) for s in spec.subcommands)
        for sub, sub_spec in spec.subcommands.items():
            lines.append(f"  {sub:<{width}}  {sub_spec.summary.split('. ')[0].rstrip('.')}")
    if spec.options is not None:
        rows = [(f.name, _show(_default(f)), meaning) for f, meaning in option_rows(spec.options)]
        lines += ["", "options (key=value):", *_table(rows)]
    if spec.config is not None:
        rows = [(key, _show(value), meaning) for key, value, meaning in setting_rows(spec)]
        lines += [
            "",
            f"settings (key=value; defaults from configs/{spec.config}.yaml):",
            *_table(rows),
        ]
        for group, to_class in spec.groups.items():
            lines += ["", *_group_lines(spec, group, to_class, args)]
        lines += [
            "",
            "Show the resolved settings without running: robot-learning "
            f"{name} [key=value ...] --cfg",
        ]
    return "\n".join(lines)


def setting_rows(spec: CommandHelp) -> list[tuple[str, Any, str]]:
    """(key, default, meaning) for every top-level setting of the command's YAML."""
    data = _yaml(spec.config)
    comments = yaml_comments(spec.config)
    docs = {}
    for cls in spec.classes:
        docs.update(field_docs(cls))
    rows = []
    for key, value in data.items():
        if key == "defaults":
            continue
        meaning = comments.get(key) or docs.get(key) or ""
        if isinstance(value, dict):
            value = "{...}"
        rows.append((key, value, meaning))
    return rows


def group_defaults(config: str) -> dict[str, Any]:
    """Config groups of ``configs/<config>.yaml`` and their default option (``???``: required)."""
    out: dict[str, Any] = {}
    for entry in _yaml(config).get("defaults", []):
        if isinstance(entry, dict):
            out.update(entry)
    return out


def group_options(group: str) -> list[str]:
    """The options of config group ``group`` (``configs/<group>/*.yaml``)."""
    folder = resources.files("configs") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def group_rows(group: str, option: str, cls: type | None) -> list[tuple[str, Any, str]]:
    """(``group.key``, default, meaning) for every field of one group option."""
    path = f"{group}/{option}"
    data = _yaml(path)
    comments = yaml_comments(path)
    docs = field_docs(cls) if cls is not None else {}
    keys = list(data)
    if cls is not None:
        keys += [f.name for f in fields(cls) if f.name not in data and not f.name.startswith("_")]
    hints = _hints(cls)
    rows = []
    for key in keys:
        if key == "name":  # the option's own name: chosen with ``<group>=<name>``
            continue
        value = data.get(key, _default_of(cls, key))
        nested = hints.get(key)
        if is_dataclass(value) or (isinstance(value, dict) and is_dataclass(nested)):
            sub_docs = field_docs(nested) if is_dataclass(nested) else {}
            values = value if isinstance(value, dict) else vars(value)
            for sub, sub_value in values.items():
                meaning = comments.get(f"{key}.{sub}") or sub_docs.get(sub, "")
                rows.append((f"{group}.{key}.{sub}", sub_value, meaning))
            continue
        if isinstance(value, dict):
            value = "{...}"
        rows.append((f"{group}.{key}", value, comments.get(key) or docs.get(key) or ""))
    return rows


def _hints(cls: type | None) -> dict[str, Any]:
    if cls is None:
        return {}
    import typing

    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        return {}


def _group_lines(spec: CommandHelp, group: str, to_class: GroupClass, args: list[str]) -> list[str]:
    options = group_options(group)
    default = group_defaults(spec.config).get(group)
    chosen = next((a.split("=", 1)[1] for a in args if a.startswith(f"{group}=")), None)
    status = "required" if default == "???" else f"default {default}" if default else "optional"
    lines = [f"{group}=<{'|'.join(options)}>  ({status})"]
    if to_class(options[0]) is None:  # a preset (a @package _global_ file): say what each sets
        return lines + [_wrap(f"{group}={o}: {preset_summary(group, o)}", 2) for o in options]
    fallback = spec.examples.get(group, options[0])
    option = chosen or (default if default not in (None, "???") else fallback)
    if option not in options:
        return lines
    rows = [(k, _show(v), m) for k, v, m in group_rows(group, option, to_class(option))]
    lines.append(
        f"{group}.<field> settings of {group}={option} (configs/{group}/{option}.yaml; "
        f"`--help {group}=<name>` shows another):"
    )
    return lines + _table(rows)


def preset_summary(group: str, option: str) -> str:
    """The header comment of ``configs/<group>/<option>.yaml`` (without the ``@package`` line)."""
    text = (resources.files("configs") / group / f"{option}.yaml").read_text()
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if "@package" not in line:
            lines.append(line.lstrip("# ").strip())
    return " ".join(lines)


def option_rows(cls: type) -> list[tuple[Any, str]]:
    """(dataclass field, meaning) for an options dataclass."""
    docs = field_docs(cls)
    return [(f, docs.get(f.name, "")) for f in fields(cls)]


def _table(rows: list[tuple[str, str, str]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    key_w = min(max(len(r[0]) for r in rows), 28)
    val_w = min(max(len(r[1]) for r in rows), 18)
    out = []
    for key, value, meaning in rows:
        head = f"  {key:<{key_w}}  {value:<{val_w}}  "
        if len(head) > 2 + key_w + 2 + val_w + 2:  # a long key or value: meaning on the next line
            out.append(head.rstrip())
            head = " " * (2 + key_w + 2 + val_w + 2)
        out.append(head + _wrap(meaning, len(head)).lstrip())
    return out


def _wrap(text: str, indent: int, width: int = 100) -> str:
    return (
        textwrap.fill(
            text, width=width, initial_indent=" " * indent, subsequent_indent=" " * indent
        )
        or " " * indent
    )


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if value == "???":
        return "(required)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def _default(f: Any) -> Any:
    from dataclasses import MISSING

    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return "???"


def _default_of(cls: type | None, key: str) -> Any:
    if cls is None:
        return None
    for f in fields(cls):
        if f.name == key:
            return _default(f)
    return None


# --------------------------------------------------------------------------- sources
@cache
def _yaml(config: str) -> dict[str, Any]:
    text = (resources.files("configs") / f"{config}.yaml").read_text()
    data = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    return data if isinstance(data, dict) else {}


_LINE = re.compile(
    r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w.]*)\s*:(?P<value>[^#]*)(#\s?(?P<comment>.*))?$"
)
_CONTINUATION = re.compile(r"^\s+#\s?(?P<comment>.*)$")


@cache
def yaml_comments(config: str) -> dict[str, str]:
    """Inline comments of ``configs/<config>.yaml`` by dotted key (continuation lines joined)."""
    text = (resources.files("configs") / f"{config}.yaml").read_text()
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last: str | None = None
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            cont = _CONTINUATION.match(line)
            if cont and last is not None and last in comments:
                comments[last] += " " + cont.group("comment").strip()
            else:
                last = None
            continue
        indent = len(match.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = ".".join([k for _, k in stack] + [match.group("key")])
        if not match.group("value").strip():
            stack.append((indent, match.group("key")))
        if match.group("comment"):
            comments[key] = match.group("comment").strip()
            last = key
        else:
            last = None
    return comments


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass's fields (the string right after each field), MRO included."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split()).replace("``", "`")
    return docs
