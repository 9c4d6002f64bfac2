"""One registry mechanism for every pluggable component (tasks, experts, policies, robots, ...).

Components register themselves with a decorator; configs refer to them by name. Plugin
packages (``sim``, ``policies``, ``hardware``) are imported lazily the first time a name is
looked up, so ``import robot_learning`` stays light and never imports MuJoCo or PyBullet.
Installed packages add components through Python entry points, one group per registry
(``robot_learning.tasks``, ``.experts``, ``.policies``, ``.robots``, ``.devices``): each entry
point names a module, imported at that first lookup so that its decorators run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Unknown or duplicate registry name; the message lists what is available."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[T]):
    """A name -> object mapping filled by the :meth:`register` decorator.

    Args:
        kind: what is registered (used in error messages), e.g. ``"task"``.
        discover: modules imported on the first lookup so that their decorators run.
    """

    def __init__(
        self, kind: str, discover: tuple[str, ...] = (), entry_points: str | None = None
    ) -> None:
        self.kind = kind
        self._discover = discover
        self._entry_points = entry_points
        self._discovered = False
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a duplicate name is an error."""

        def deco(obj: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not obj:
                raise RegistryError(f"{self.kind} {name!r} is already registered ({existing!r})")
            self._items[name] = obj
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. a component registered only for a test); unknown names are ignored."""
        self._items.pop(name, None)

    def _load_plugins(self) -> None:
        if self._discovered:
            return
        self._discovered = True  # first: a plugin that looks names up does not recurse
        for module in self._discover:
            importlib.import_module(module)
        if self._entry_points:
            for ep in entry_points(group=self._entry_points):
                try:
                    importlib.import_module(ep.value)
                except Exception as exc:
                    dist = ep.dist.name if ep.dist is not None else "an installed package"
                    raise RegistryError(
                        f"{self.kind} plugin {ep.name!r} ({ep.value}, entry point group "
                        f"{self._entry_points!r} of {dist}) failed to import: "
                        f"{type(exc).__name__}: {exc}; fix or uninstall {dist}"
                    ) from exc

    def get(self, name: str) -> T:
        """Return the object registered as ``name``; errors list the known names."""
        if name not in self._items:
            self._load_plugins()
        if name not in self._items:
            raise RegistryError(
                f"Unknown {self.kind} {name!r}. Available: {', '.join(sorted(self._items)) or '(none)'}"
            )
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._load_plugins()
        return sorted(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
