"""Inference runtimes for exported bundles (no training code; torch only for the reference runtime)."""

from robot_learning.runtime.base import RUNTIMES, Runtime, RuntimeUnavailable, available_runtimes
from robot_learning.runtime.bundle import BundleError, read_bundle
from robot_learning.runtime.bundle_policy import BundlePolicy, ObservationError, load_bundle
from robot_learning.runtime.reward import RewardModel, load_reward_model

__all__ = [
    "RUNTIMES", "BundleError", "BundlePolicy", "ObservationError", "RewardModel", "Runtime",
    "RuntimeUnavailable", "available_runtimes", "load_bundle", "load_reward_model", "read_bundle",
]  # fmt: skip
