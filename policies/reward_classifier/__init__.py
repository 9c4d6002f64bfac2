"""Binary success classifier used as a learned reward (SERL / HIL-SERL), registered as ``reward_classifier``."""

from policies.reward_classifier.configuration import RewardClassifierConfig
from policies.reward_classifier.modeling import RewardClassifier

__all__ = ["RewardClassifier", "RewardClassifierConfig"]
