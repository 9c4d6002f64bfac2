"""Process-wide workarounds for clashes between native libraries.

Triton vs OSMesa: with ``MUJOCO_GL=osmesa`` MuJoCo's renderer makes PyOpenGL load libOSMesa
(and its LLVM) with ``RTLD_GLOBAL``; loading triton's ``libtriton.so`` after that segfaults
(observed with triton 3.8 / mujoco 4.0). torch imports triton lazily on the first optimizer
construction or ``torch._dynamo`` import, so "make an env, then train" crashes. Loading triton
first is fine, so :func:`guard_triton` imports it early, or, when MuJoCo is already loaded,
makes it unimportable (torch then runs without triton, which CPU execution never uses).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

log = logging.getLogger(__name__)


def guard_triton() -> None:
    """Make the triton/OSMesa clash impossible for the rest of this process (idempotent)."""
    if "triton" in sys.modules:
        return
    if "mujoco" not in sys.modules:
        with contextlib.suppress(ImportError):
            import triton  # noqa: F401  (loaded before libOSMesa, the clash cannot happen)
        return
    if os.environ.get("MUJOCO_GL") == "osmesa" or os.environ.get("PYOPENGL_PLATFORM") == "osmesa":
        sys.modules["triton"] = None  # type: ignore[assignment]  # import triton -> ImportError
        log.info(
            "MuJoCo/OSMesa already loaded: triton disabled for this process (it would segfault)"
        )
