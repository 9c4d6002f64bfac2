"""The interface every inference runtime implements, and the registry that picks one.

A runtime executes one exported graph: named numpy inputs (the observation keys, each
``[B, n_obs_steps, *shape]``, plus ``noise`` ``[B, horizon, A]``) -> raw action chunk
``[B, horizon, A]`` float32. Everything around the graph (input checks, noise, receding horizon)
lives in :class:`~robot_learning.runtime.bundle_policy.BundlePolicy`, so a runtime is small and
knows nothing about policies. Runtimes import their engine lazily; none of them needs torch
except ``torch`` itself (the reference).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from robot_learning.registry import Registry

RUNTIMES: Registry[type[Runtime]] = Registry(
    "runtime", discover=("robot_learning.runtime.backends",)
)


class RuntimeUnavailable(RuntimeError):
    """The runtime's engine (library or hardware) is not present on this machine."""


class Runtime(ABC):
    """One loaded graph of a bundle, callable on numpy inputs.

    Subclasses register with ``@RUNTIMES.register(name)`` and set :attr:`speed_rank`
    (lower = preferred by ``runtime=auto``).
    """

    name: ClassVar[str] = "base"
    speed_rank: ClassVar[int] = 100

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the runtime can run here, else a sentence saying what is missing."""
        return None

    @classmethod
    def missing_from(cls, bundle_dir: Path, spec: dict) -> str | None:
        """None when the bundle holds what this runtime loads, else what is missing."""
        return None

    @abstractmethod
    def __init__(self, bundle_dir: Path, spec: dict, threads: int | None = None) -> None:
        """Load the graph of ``bundle_dir`` (``spec`` = its parsed ``policy.json``)."""

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Named inputs (exactly the bundle's declared inputs) -> ``[B, horizon, A]`` float32
        (a reward classifier's graph: success probabilities ``[B]``)."""

    def input_signature(self) -> dict[str, tuple[str, tuple]] | None:
        """What the loaded graph declares: input name -> (dtype name, shape with None for dynamic).

        Checked against ``policy.json`` at load; None when the engine cannot tell.
        """
        return None

    @property
    def device(self) -> str:
        """Where the graph runs (for reports), e.g. ``cpu`` or ``CUDAExecutionProvider``."""
        return "cpu"


def available_runtimes() -> dict[str, str | None]:
    """Every registered runtime -> None if usable here, else why not."""
    return {name: RUNTIMES.get(name).unavailable_reason() for name in RUNTIMES.names()}


def resolve_runtime(name: str, bundle_dir: Path, spec: dict) -> type[Runtime]:
    """``auto`` -> the fastest runtime that can load this bundle here; a name -> that runtime.

    Raises :class:`RuntimeUnavailable` naming what is missing (library, GPU or bundle file).
    """

    def why_not(cls: type[Runtime]) -> str | None:
        return cls.unavailable_reason() or cls.missing_from(bundle_dir, spec)

    if name == "auto":
        reasons = {n: why_not(RUNTIMES.get(n)) for n in RUNTIMES.names()}
        usable = [RUNTIMES.get(n) for n, why in reasons.items() if why is None]
        if not usable:
            raise RuntimeUnavailable(f"No runtime can run {bundle_dir} here: {reasons}")
        return min(usable, key=lambda cls: cls.speed_rank)
    cls = RUNTIMES.get(name)
    why = why_not(cls)
    if why is not None:
        raise RuntimeUnavailable(f"runtime={name!r} cannot run {bundle_dir}: {why}")
    return cls
