"""Runtime backends; importing this package registers each of them in ``RUNTIMES``."""

from . import ort, tensorrt, torch_ref  # noqa: F401
