"""Config of the binary success classifier (``policy=reward_classifier``)."""

from __future__ import annotations

from dataclasses import dataclass

from policies.common.encoders import VISION_BACKBONES
from robot_learning.policy import PolicyConfig


@dataclass
class RewardClassifierConfig(PolicyConfig):
    """Camera frames (optionally with the robot state) -> probability that the task is done.

    The classifier judges one frame, so the windowing fields of :class:`PolicyConfig` are fixed
    at 1 (checked). Class imbalance (often only an episode's last frame is a success) is handled
    by weighting positive frames in the loss (``pos_weight``) and by picking the decision
    threshold on held-out episodes rather than using 0.5.
    """

    n_obs_steps: int = 1
    """Frames per decision; must be 1 (a reward for one observation, as an env returns it)."""
    horizon: int = 1
    """Unused by a classifier (no action chunk); must be 1."""
    n_action_steps: int = 1
    """Unused by a classifier (no action chunk); must be 1."""
    use_state: bool = False
    """Also feed ``observation.state`` (proprioception) when ``input_keys`` is null. Off by
    default: success is usually visible, and the state alone invites shortcuts (e.g. "gripper
    closed at the goal height") that a real robot's failures also show."""
    success_frames_after: bool = False
    """Count every frame after an episode's first ``next.success`` as a success (success as an
    absorbing state); false keeps each frame's own flag (the simulator's per-frame success, or
    the operator's label on the last frame of a teleop episode)."""
    pos_weight: float | None = None
    """Weight of positive frames in the binary cross-entropy; null = (negative frames) /
    (positive frames) of the training episodes, which balances the two classes."""
    val_fraction: float = 0.2
    """Fraction of episodes held out (per group: episodes with and without a success, seeded)
    to pick the threshold and report precision/recall; at least one successful episode is
    held out and one kept."""
    split_seed: int = 0
    """Seed of the held-out episode draw."""
    min_precision: float | None = None
    """Threshold rule: null = maximum F1 on the held-out frames; a value p = the highest recall
    whose held-out precision is >= p (false successes mislead RL more than missed ones)."""
    vision_backbone: str = "small"
    """Per-camera trunk: small (3 GroupNorm convs, fast on a CPU) or resnet18 (GroupNorm,
    from scratch; for cluttered real scenes)."""
    crop_ratio: float = 0.9
    """Random (train) / center (inference) crop side as a fraction of the image side; 1 = none."""
    num_keypoints: int = 32
    """Spatial-softmax keypoints per camera (the zoo's image encoder)."""
    image_feature_dim: int = 64
    """Feature size per camera after the keypoint head."""
    state_mlp_dims: tuple[int, ...] = ()
    """MLP on the state vector before it joins the image features; () = identity."""
    hidden_dims: tuple[int, ...] = (256,)
    """Hidden layers of the classification head on the concatenated features."""
    dropout: float = 0.1
    """Dropout before each layer of the head (training only)."""

    def __post_init__(self) -> None:
        if (self.n_obs_steps, self.horizon, self.n_action_steps) != (1, 1, 1):
            raise ValueError(
                "reward_classifier judges single frames: n_obs_steps, horizon and n_action_steps "
                f"must be 1 (got {self.n_obs_steps}, {self.horizon}, {self.n_action_steps})"
            )
        super().__post_init__()
        # JSON round trips (config.json) turn tuples into lists
        self.state_mlp_dims = tuple(int(d) for d in self.state_mlp_dims)
        self.hidden_dims = tuple(int(d) for d in self.hidden_dims)
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(
                f"val_fraction={self.val_fraction} must be in (0, 1): the threshold is picked on "
                "held-out episodes"
            )
        if self.pos_weight is not None and not self.pos_weight > 0:
            raise ValueError(f"pos_weight={self.pos_weight} must be > 0 (or null: from the data)")
        if self.min_precision is not None and not 0.0 < self.min_precision <= 1.0:
            raise ValueError(f"min_precision={self.min_precision} must be in (0, 1] (or null)")
        if self.vision_backbone not in VISION_BACKBONES:
            raise ValueError(
                f"vision_backbone={self.vision_backbone!r} is not one of {VISION_BACKBONES}"
            )
        if not 0.0 < self.crop_ratio <= 1.0:
            raise ValueError(f"crop_ratio={self.crop_ratio} must be in (0, 1]")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
