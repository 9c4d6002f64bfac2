"""Conditional flow-matching policy (rectified flow, pi0 convention), registered as ``flow``."""

from policies.flow.configuration import FlowConfig
from policies.flow.modeling import FlowPolicy

__all__ = ["FlowConfig", "FlowPolicy"]
