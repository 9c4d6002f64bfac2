"""Diffusion Policy (Chi et al., RSS 2023), registered as ``diffusion``."""

from policies.diffusion.configuration import DiffusionConfig
from policies.diffusion.modeling import DiffusionPolicy

__all__ = ["DiffusionConfig", "DiffusionPolicy"]
