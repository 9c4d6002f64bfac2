"""Recording fakes of vendor robot SDKs (``robot.fake=true``).

Each fake module has the names and signatures of the part of its SDK that a driver uses, so the
driver runs exactly the same code against it as against the real SDK; the driver only chooses
which module object to load. Every call is recorded as a :class:`Call` on the fake arm it
reached (one arm per host, kept across connections like a real arm), and the arm integrates a
simple kinematic state: a commanded pose is reached by the end of the command's period, so
observations follow the commands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Call:
    """One SDK call as the driver made it."""

    interface: str
    """The SDK object that was called (``RTDEControlInterface``, ``Robot``, ``Gripper``, ...)."""
    method: str
    """Method or property name (``__init__`` for a connection)."""
    args: tuple[Any, ...]
    """Positional arguments followed by keyword arguments' values, as passed."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments, as passed."""
    time: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the call arrived (s)."""


class CallLog(list):
    """The calls an arm received, oldest first, with lookups by method name."""

    def named(self, method: str) -> list[Call]:
        """Calls of ``method`` (any interface), oldest first."""
        return [c for c in self if c.method == method]

    def methods(self) -> list[str]:
        """Method names in call order."""
        return [c.method for c in self]

    def record(self, interface: str, method: str, *args: Any, **kwargs: Any) -> None:
        """Append one call."""
        self.append(Call(interface, method, args, kwargs))
