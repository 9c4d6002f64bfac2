"""What actor and learner must agree on: observation keys, the wire schema, the actor network.

Both sides derive it from the task's features and ``algo.*``; the handshake compares the two
hashes (:attr:`HilContract.spec_hash`, :attr:`HilContract.arch_hash`) so a mismatch is refused
with a reason instead of loading weights into the wrong network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from robot_learning.features import ACTION, Feature, FeatureSpec
from robot_learning.hil.messages import WireSchema
from robot_learning.hil.transport import TransportError, canonical_hash, sha256_hex
from robot_learning.rl.encoders import EncoderConfig, PixelEncoder
from robot_learning.rl.networks import TanhGaussianActor, action_feature, obs_dim
from robot_learning.rl.observations import LearnerObservations

if TYPE_CHECKING:
    from robot_learning.hil.config import HilSerlConfig


@dataclass(frozen=True)
class HilContract:
    """Keys, schema, hashes and network shape shared by actor and learner."""

    spec: FeatureSpec
    keys: list[str]
    action: Feature
    hidden: tuple[int, ...]
    encoder: EncoderConfig | None = None
    """The image encoder's settings when the policy reads the cameras (pixel RL), else None."""

    @classmethod
    def from_spec(
        cls, spec: FeatureSpec, hidden: tuple[int, ...], encoder: EncoderConfig | None = None
    ) -> HilContract:
        """The contract of a task and the actor's hidden widths. Without ``encoder`` the policy
        reads the state keys and camera keys stay on the actor (they feed a reward classifier);
        with one, the cameras travel and the policy reads them through a pixel encoder."""
        obs = LearnerObservations(spec, skip_images=encoder is None)
        keys = obs.keys
        return cls(
            spec.select([*keys, ACTION]),
            keys,
            action_feature(spec),
            tuple(hidden),
            encoder if obs.pixels else None,
        )

    @classmethod
    def for_algo(cls, spec: FeatureSpec, algo_cfg: HilSerlConfig) -> HilContract:
        """The contract ``algo.*`` asks for (``algo.learner_images``: pixel RL on camera tasks)."""
        return cls.from_spec(
            spec, algo_cfg.hidden, algo_cfg.encoder if algo_cfg.learner_images else None
        )

    @property
    def observations(self) -> LearnerObservations:
        """How observations become network input."""
        return LearnerObservations(self.spec, skip_images=self.encoder is None)

    @property
    def obs_dim(self) -> int:
        """Length of the flattened state observation (the encoder adds camera features)."""
        return obs_dim(self.spec, [k for k in self.keys if not self.spec[k].is_image])

    @property
    def schema(self) -> WireSchema:
        """The (dtype, shape) every transition array must have."""
        return WireSchema.from_spec(self.spec, self.keys)

    @property
    def spec_hash(self) -> str:
        """SHA-256 of the canonical feature spec."""
        return canonical_hash(self.spec.to_dict())

    @property
    def arch_hash(self) -> str:
        """SHA-256 of the actor network's description."""
        arch = {
            "network": "TanhGaussianActor",
            "obs_dim": self.obs_dim,
            "keys": self.keys,
            "action": self.action.to_dict(),
            "hidden": list(self.hidden),
        }
        if self.encoder is not None:
            arch["encoder"] = asdict(self.encoder)
        return canonical_hash(arch)

    def build_encoder(self) -> PixelEncoder | None:
        """A fresh image encoder (None for a state-only policy)."""
        return self.observations.encoder(self.encoder) if self.encoder is not None else None

    def build_actor(self, encoder: torch.nn.Module | None = None) -> TanhGaussianActor:
        """A fresh actor network of the agreed shape (with its own encoder for pixel policies)."""
        encoder = encoder if encoder is not None else self.build_encoder()
        dim = self.obs_dim if encoder is None else encoder.out_dim
        return TanhGaussianActor(dim, self.action, self.hidden, encoder=encoder)


def weights_payload(actor: torch.nn.Module) -> bytes:
    """The actor's state dict as safetensors bytes (what travels to actors)."""
    return save_tensors({k: v.detach().cpu().contiguous() for k, v in actor.state_dict().items()})


def load_payload(actor: torch.nn.Module, payload: bytes, sha256: str) -> None:
    """Check ``payload`` against its SHA-256, then load it into ``actor`` (strict key/shape match)."""
    if sha256_hex(payload) != sha256:
        raise TransportError("weights payload does not match its SHA-256 (corrupted in transit)")
    try:
        state = load_tensors(payload)
        actor.load_state_dict(state, strict=True)
    except Exception as exc:  # safetensors and torch raise several types for bad payloads
        raise TransportError(f"weights payload does not fit the actor network: {exc}") from exc
