"""The learner's two buffers and how actor transitions reach them (HIL-SERL's data flow).

* **online**: every transition of every actor, one ring (stream) per actor, in time order.
* **offline**: the demonstrations (stream 0) plus every intervention segment (stream 1): the
  operator's actions are treated as demonstrations, so they also land here.

Batches are half offline, half online (RLPD's symmetric sampling), or all online while the
offline buffer is empty.

An actor's transitions continue its open episode when ``(episode, step)`` follows the previous
one; anything else (a new episode, a lost batch, a restarted actor) ends the open episode as a
truncation first, so n-step returns never cross a gap.

Rewards (``algo.reward``): ``env`` trains on the environment's reward, ``classifier`` on the
actor's learned success reward, ``rlif`` on -1 for the policy's transition into the state where
each intervention began (the first step's own transition when the episode starts with one) and
0 otherwise, with no task reward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_learning.features import ACTION, FeatureSpec
from robot_learning.hil.messages import Transition
from robot_learning.rl.replay import ReplayBuffer
from robot_learning.rl.sampling import SymmetricSampler

DEMO_STREAM, INTERVENTION_STREAM = 0, 1


@dataclass
class _ActorTrack:
    stream: int
    episode: int = -1
    step: int = -1
    segment: list[tuple[Transition, float]] = field(default_factory=list)


class HilStorage:
    """Online + offline buffers fed by actor transitions; see the module docstring."""

    def __init__(
        self,
        spec: FeatureSpec,
        keys: list[str],
        online_rows: int,
        max_actors: int,
        reward: str = "env",
        offline: ReplayBuffer | None = None,
        offline_rows: int = 100_000,
    ) -> None:
        self.keys, self.reward_mode = keys, reward
        self.spec = spec.select([*keys, ACTION])
        self.online = ReplayBuffer(self.spec, online_rows * max_actors, streams=max_actors)
        self.offline = offline or ReplayBuffer(self.spec, 2 * offline_rows, streams=2)
        if self.offline.streams < 2:
            raise ValueError(
                "the offline buffer needs a stream for demonstrations and one for interventions"
            )
        self.actors: dict[str, _ActorTrack] = {}
        self.env_steps = 0
        self.interventions = 0
        self.intervention_steps = 0
        self._with_offline = SymmetricSampler(self.online, self.offline)
        self._online_only = SymmetricSampler(self.online)

    # ---------------------------------------------------------------- writing
    def track(self, actor_id: str) -> _ActorTrack:
        """The actor's stream (assigned on first sight); an error when every stream is taken."""
        if actor_id not in self.actors:
            if len(self.actors) >= self.online.streams:
                raise ValueError(
                    f"the learner already serves {len(self.actors)} actors (algo.max_actors); "
                    "raise algo.max_actors on the learner"
                )
            self.actors[actor_id] = _ActorTrack(stream=len(self.actors))
        return self.actors[actor_id]

    def add(self, actor_id: str, t: Transition) -> None:
        """Store one transition of ``actor_id`` in the online buffer (and in the offline one when
        the operator drove)."""
        a = self.track(actor_id)
        s = a.stream
        continuing = bool(self.online.open[s]) and (t.episode, t.step) == (a.episode, a.step + 1)
        if not continuing:
            self.online.close_stream(s)
            self._flush(a)
        reward = self._reward(t)
        if self.reward_mode == "rlif" and t.intervention_start:
            row = self.online.last_transition_row(s) if continuing else None
            if row is None:
                reward = -1.0
            else:
                self.online.reward[row, s] = -1.0
        self.online.add(
            {k: t.observation[k][None] for k in self.keys},
            np.asarray(t.action, np.float32)[None],
            np.array([reward], np.float32),
            {k: t.next_observation[k][None] for k in self.keys},
            np.array([t.terminated]),
            np.array([t.truncated]),
            streams=np.array([s]),
        )
        if t.is_intervention:
            if t.intervention_start:
                self._flush(a)
            a.segment.append((t, reward))
        if not t.is_intervention or t.terminated or t.truncated:
            self._flush(a)
        a.episode, a.step = t.episode, t.step
        self.env_steps += 1
        self.interventions += int(t.intervention_start)
        self.intervention_steps += int(t.is_intervention)

    def end_actor(self, actor_id: str) -> None:
        """The actor reconnected or left: close its open episode and intervention segment."""
        if actor_id in self.actors:
            a = self.actors[actor_id]
            self.online.close_stream(a.stream)
            self._flush(a)
            a.episode = a.step = -1

    def _reward(self, t: Transition) -> float:
        if self.reward_mode == "classifier":
            return float(t.classifier_reward)
        if self.reward_mode == "rlif":
            return 0.0
        return float(t.env_reward)

    def _flush(self, a: _ActorTrack) -> None:
        """Write the actor's pending intervention segment to the offline buffer as one episode."""
        if not a.segment:
            return
        steps, a.segment = a.segment, []
        obs = {
            k: np.stack([t.observation[k] for t, _ in steps] + [steps[-1][0].next_observation[k]])
            for k in self.keys
        }
        action = np.stack([np.asarray(t.action, np.float32) for t, _ in steps])
        reward = np.array([r for _, r in steps], np.float32)
        self.offline.add_episode(
            obs, action, reward, terminated=steps[-1][0].terminated, stream=INTERVENTION_STREAM
        )

    # ---------------------------------------------------------------- reading
    def sample(
        self, batch_size: int, rng: np.random.Generator, n_step: int, gamma: float
    ) -> dict[str, object]:
        """A batch, half offline when the offline buffer holds anything (``is_demo`` marks it)."""
        sampler = self._with_offline if len(self.offline) else self._online_only
        return sampler.sample(batch_size, rng, n_step, gamma)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON counters and actor streams, flat arrays of both buffers)."""
        meta = {
            "env_steps": self.env_steps,
            "interventions": self.interventions,
            "intervention_steps": self.intervention_steps,
            "actors": {k: v.stream for k, v in self.actors.items()},
        }
        arrays = {f"online/{k}": v for k, v in self.online.state_dict().items()}
        arrays.update({f"offline/{k}": v for k, v in self.offline.state_dict().items()})
        return meta, arrays

    def load_state_dict(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output; open episodes are closed (actors start new ones)."""
        for name, buf in (("online", self.online), ("offline", self.offline)):
            prefix = f"{name}/"
            buf.load_state_dict(
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            )
        self.env_steps = int(meta["env_steps"])
        self.interventions = int(meta["interventions"])
        self.intervention_steps = int(meta["intervention_steps"])
        self.actors = {k: _ActorTrack(stream=int(v)) for k, v in meta["actors"].items()}
        for s in range(self.online.streams):
            self.online.close_stream(s)
