"""What actor and learner must agree on: observation keys, the wire schema, the actor network.

Both sides derive it from the task's features and ``algo.*``; the handshake compares the two
hashes (:attr:`HilContract.spec_hash`, :attr:`HilContract.arch_hash`) so a mismatch is refused
with a reason instead of loading weights into the wrong network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from robot_learning.features import ACTION, Feature, FeatureSpec
from robot_learning.hil.messages import WireSchema
from robot_learning.hil.transport import TransportError, canonical_hash, sha256_hex
from robot_learning.rl.networks import TanhGaussianActor, action_feature, obs_dim, state_keys


@dataclass(frozen=True)
class HilContract:
    """Keys, schema, hashes and network shape shared by actor and learner."""

    spec: FeatureSpec
    keys: list[str]
    action: Feature
    hidden: tuple[int, ...]

    @classmethod
    def from_spec(cls, spec: FeatureSpec, hidden: tuple[int, ...]) -> HilContract:
        """The contract of a task and the actor's hidden widths: the learner reads the state keys;
        camera keys stay on the actor (they feed a reward classifier) and never travel."""
        keys = state_keys(spec, skip_images=True)
        return cls(spec.select([*keys, ACTION]), keys, action_feature(spec), tuple(hidden))

    @property
    def obs_dim(self) -> int:
        """Length of the flattened observation."""
        return obs_dim(self.spec, self.keys)

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
        return canonical_hash(
            {
                "network": "TanhGaussianActor",
                "obs_dim": self.obs_dim,
                "keys": self.keys,
                "action": self.action.to_dict(),
                "hidden": list(self.hidden),
            }
        )

    def build_actor(self) -> TanhGaussianActor:
        """A fresh actor network of the agreed shape."""
        return TanhGaussianActor(self.obs_dim, self.action, self.hidden)


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
