"""The transition schema of HIL-SERL and its protobuf form (:mod:`robot_learning.hil.proto`).

A :class:`Transition` is one environment step as an actor executed it: the observation before
and after, the executed action and the policy's proposal, who drove (policy, human, demo), the
intervention flags, the weights version, both rewards (the environment's and the learned
classifier's) and how the step ended. The learner decides which reward it trains on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_learning.features import ACTION, FeatureSpec
from robot_learning.hil.proto import hil_pb2 as pb
from robot_learning.hil.transport import (
    TransportError,
    decode_array,
    decode_map,
    encode_array,
    encode_map,
)

SOURCES = {"policy": pb.SOURCE_POLICY, "human": pb.SOURCE_HUMAN, "demo": pb.SOURCE_DEMO}
SOURCE_NAMES = {v: k for k, v in SOURCES.items()}


@dataclass
class Transition:
    """One executed environment step (see the module docstring)."""

    observation: dict[str, np.ndarray]
    next_observation: dict[str, np.ndarray]
    action: np.ndarray
    """The executed action (the operator's during an intervention)."""
    policy_action: np.ndarray
    """What the policy proposed at this step."""
    is_intervention: bool = False
    intervention_start: bool = False
    source: str = "policy"
    """``policy``, ``human`` or ``demo``."""
    policy_version: int = 0
    env_reward: float = 0.0
    classifier_reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    episode: int = 0
    """The actor's episode counter."""
    step: int = 0
    """Step within the episode (0 for the first)."""

    def to_proto(self) -> pb.Transition:
        """The wire form."""
        return pb.Transition(
            observation=encode_map(self.observation),
            next_observation=encode_map(self.next_observation),
            action=encode_array(np.asarray(self.action, np.float32)),
            policy_action=encode_array(np.asarray(self.policy_action, np.float32)),
            is_intervention=self.is_intervention,
            intervention_start=self.intervention_start,
            source=SOURCES[self.source],
            policy_version=self.policy_version,
            env_reward=self.env_reward,
            classifier_reward=self.classifier_reward,
            terminated=self.terminated,
            truncated=self.truncated,
            episode=self.episode,
            step=self.step,
        )

    @classmethod
    def from_proto(cls, msg: pb.Transition, schema: WireSchema | None = None) -> Transition:
        """Decode (and with ``schema`` check every array against the learner's features)."""
        if msg.source not in SOURCE_NAMES:
            raise TransportError(f"transition source {msg.source} is not policy, human or demo")
        obs_expect = None if schema is None else schema.observation
        act_expect = None if schema is None else schema.action
        out = cls(
            observation=decode_map(msg.observation, obs_expect),
            next_observation=decode_map(msg.next_observation, obs_expect),
            action=decode_array(msg.action, act_expect),
            policy_action=decode_array(msg.policy_action, act_expect),
            is_intervention=msg.is_intervention,
            intervention_start=msg.intervention_start,
            source=SOURCE_NAMES[msg.source],
            policy_version=msg.policy_version,
            env_reward=msg.env_reward,
            classifier_reward=msg.classifier_reward,
            terminated=msg.terminated,
            truncated=msg.truncated,
            episode=msg.episode,
            step=msg.step,
        )
        values = [out.action, out.policy_action, out.env_reward, out.classifier_reward]
        values += [v for v in out.observation.values() if v.dtype.kind == "f"]
        if not all(np.isfinite(v).all() for v in values):
            raise TransportError("transition holds NaN or Inf values")
        if out.step < 0 or out.episode < 0:
            raise TransportError(f"transition episode {out.episode} step {out.step} is negative")
        return out


@dataclass(frozen=True)
class WireSchema:
    """The (dtype, shape) of every array a transition must carry, from the learner's features."""

    observation: dict[str, tuple[str, tuple[int, ...]]]
    action: tuple[str, tuple[int, ...]]

    @classmethod
    def from_spec(cls, spec: FeatureSpec, keys: list[str]) -> WireSchema:
        """Observation ``keys`` and ``action`` of ``spec`` (images are uint8 on the wire)."""

        def wire(key: str) -> tuple[str, tuple[int, ...]]:
            f = spec[key]
            return ("uint8" if f.is_image else "float32", tuple(f.shape))

        return cls({k: wire(k) for k in keys}, ("float32", tuple(spec[ACTION].shape)))


def cast_observation(obs: dict[str, Any], schema: WireSchema) -> dict[str, np.ndarray]:
    """An environment observation with exactly the schema's keys and dtypes (for sending)."""
    return {k: np.asarray(obs[k], dtype) for k, (dtype, _) in schema.observation.items()}


def episode_summary(stats: dict[str, Any]) -> pb.EpisodeSummary:
    """A finished actor episode's statistics as a message."""
    return pb.EpisodeSummary(**stats)
