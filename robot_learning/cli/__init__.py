"""The ``robot-learning`` console script: ``robot-learning <command> [args] [key=value ...]``.

Commands register themselves in :data:`COMMANDS` (one module each in this package); this
module only dispatches and turns expected errors into a one-line message and exit code 2.
"""

from __future__ import annotations

import errno
import logging
import sys
import textwrap
from collections.abc import Callable

from rich.console import Console
from rich.logging import RichHandler

from robot_learning.cli.help import render, resolve, wants_config, wants_help, without_flags
from robot_learning.config import ConfigError
from robot_learning.datasets import DatasetError
from robot_learning.errors import HardwareUnavailable
from robot_learning.export.exporter import ExportError
from robot_learning.registry import Registry
from robot_learning.runtime.base import RuntimeUnavailable
from robot_learning.runtime.bundle import BundleError

#: command name -> function(args: list[str]) -> exit code
COMMANDS: Registry[Callable[[list[str]], int]] = Registry(
    "command",
    discover=(
        "robot_learning.cli.collect",
        "robot_learning.cli.dataset",
        "robot_learning.cli.bench",
        "robot_learning.cli.train",
        "robot_learning.cli.eval",
        "robot_learning.cli.export",
        "robot_learning.cli.deploy",
        "robot_learning.cli.finetune",
        "robot_learning.cli.bundle",
        "robot_learning.cli.teleop",
        "robot_learning.cli.hil",
        "robot_learning.cli.robot",
    ),
)


def usage() -> str:
    """``robot-learning --help``: every command with its usage line and what it does."""
    from robot_learning.cli.help import HELP
    from robot_learning.cli.help_specs import register_all

    register_all()
    lines = ["usage: robot-learning [-v] <command> [args] [key=value ...]", "", "commands:"]
    for spec in HELP.values():
        lines.append(f"  {spec.usage}")
        lines.append(
            textwrap.fill(spec.summary, 100, initial_indent=" " * 6, subsequent_indent=" " * 6)
        )
    lines += [
        "",
        "robot-learning <command> --help lists a command's settings with their defaults and "
        "meanings; --cfg prints the resolved settings without running.",
        "Overrides use Hydra syntax (configs/ in the package); e.g. task.reward=sparse, "
        "task.image_size=64. config_dir=DIR (any command) adds your own YAML, e.g. "
        "DIR/task/<name>.yaml for task=<name>.",
    ]
    return "\n".join(lines)


err_console = Console(stderr=True, soft_wrap=True)


def _import_isaacgym_first(args: list[str]) -> None:
    """NVIDIA's ``isaacgym`` refuses to load after torch: import it first when a command names
    it (``task=isaacgym_*`` or ``backend=isaacgym``) and it is installed."""
    import importlib.util

    named = any("isaacgym" in a for a in args) and "torch" not in sys.modules
    if named and importlib.util.find_spec("isaacgym") is not None:
        import isaacgym  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``robot-learning`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = False
    while args and args[0] in ("-v", "--verbose"):
        verbose, args = True, args[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )
    _import_isaacgym_first(args)
    name, rest = args[0], args[1:]
    try:
        command = COMMANDS.get(name)
    except KeyError as exc:
        _error(str(exc))
        print(usage(), file=sys.stderr)
        return 2
    try:
        if wants_help(rest) or wants_config(rest):
            return _help_or_config(name, rest)
        return int(command(rest) or 0)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130
    except (
        ValueError,
        KeyError,
        DatasetError,
        BundleError,
        ExportError,
        RuntimeUnavailable,
    ) as exc:
        if verbose:
            raise
        _error(str(exc))
        return 2
    except HardwareUnavailable as exc:  # a robot or camera: the message names the fix
        if verbose:
            raise
        _error(str(exc))
        return 1
    except BrokenPipeError:  # output piped into a reader that stopped (`| head`): not an error
        return 141
    except OSError as exc:  # read-only file system, disk full, permission, missing file, ...
        if verbose:
            raise
        _error(describe_os_error(exc))
        return 2


def describe_os_error(exc: OSError) -> str:
    """One line naming the path and the cause of a file-system error, with a hint to fix it."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(repr(p) for p in paths) if paths else "(path unknown)"
    hint = _OS_ERROR_HINTS.get(exc.errno, "")
    if exc.strerror is None and str(exc):  # raised with a message of its own: it names the path
        return str(exc) + (f" ({hint})" if hint else "")
    return f"{where}: {cause}" + (f" ({hint})" if hint else "")


_OS_ERROR_HINTS = {
    errno.EROFS: "the file system is read-only: pass an out= on a writable disk",
    errno.ENOSPC: "the disk is full: free space or pass an out= on another disk",
    errno.EDQUOT: "the disk quota is exceeded: free space or pass an out= on another disk",
    errno.EFBIG: "the file is too large for this file system or the process's file-size limit",
    errno.EACCES: "permission denied: check the folder's owner and mode, or pick another out=",
    errno.EPERM: "operation not permitted: check the folder's owner and mode",
    errno.ENOENT: "no such file or folder: check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "expected a file but found a folder",
}


def _error(message: str) -> None:
    """One red 'error:' line; the message is printed verbatim (no rich markup parsing)."""
    err_console.print("[red]error:[/] ", end="")
    err_console.print(message, markup=False, highlight=False)


def _help_or_config(name: str, args: list[str]) -> int:
    """Print a command's generated help (``--help``) or its resolved config (``--cfg``)."""
    from omegaconf import OmegaConf

    from robot_learning.cli.help_specs import register_all
    from robot_learning.config import load_config

    register_all()
    full_name, spec = resolve(name, args)
    if wants_help(args):
        print(render(full_name, spec, args))
        return 0
    if spec.config is None:
        raise ConfigError(
            f"'{full_name}' has no config file; see robot-learning {full_name} --help"
        )
    overrides = [a for a in without_flags(args) if "=" in a]
    if spec.prepare is not None:
        overrides = spec.prepare(overrides)
    print(OmegaConf.to_yaml(load_config(spec.config, overrides)), end="")
    return 0
