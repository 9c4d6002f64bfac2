"""MeanFlow one-step policy (Geng et al. 2025; MP1), registered as ``meanflow``."""

from policies.meanflow.configuration import MeanFlowConfig
from policies.meanflow.modeling import MeanFlowPolicy

__all__ = ["MeanFlowConfig", "MeanFlowPolicy"]
