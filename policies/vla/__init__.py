"""Vision-language-action policy (pi0 / SmolVLA shape), registered as ``vla``."""

from policies.vla.configuration import VLAConfig
from policies.vla.modeling import VLAPolicy

__all__ = ["VLAConfig", "VLAPolicy"]
