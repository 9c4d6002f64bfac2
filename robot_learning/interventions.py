"""Per-frame intervention columns shared by teleop recording, ``recorder_node`` and training.

Names follow LeRobot's human-in-the-loop recordings (``complementary_info.*``, float32 flags) so
that LeRobot reads them as ordinary features:

- ``complementary_info.is_intervention``: 1.0 on frames the operator drove, else 0.0;
- ``complementary_info.intervention_start``: 1.0 on the first frame of each intervention;
- ``complementary_info.policy_action``: the action the policy proposed on that frame (the
  executed one is ``action``); equal to ``action`` when no policy drives.
"""

from __future__ import annotations

from robot_learning.features import ACTION, Feature, FeatureSpec

IS_INTERVENTION = "complementary_info.is_intervention"
INTERVENTION_START = "complementary_info.intervention_start"
POLICY_ACTION = "complementary_info.policy_action"


def intervention_features(features: FeatureSpec) -> FeatureSpec:
    """The three intervention columns for a task whose action feature is ``features[ACTION]``."""
    action = features[ACTION]
    return FeatureSpec(
        {
            IS_INTERVENTION: Feature("float32", (1,), ("is_intervention",)),
            INTERVENTION_START: Feature("float32", (1,), ("intervention_start",)),
            POLICY_ACTION: Feature(
                "float32", action.shape, action.names, low=action.low, high=action.high
            ),
        }
    )
