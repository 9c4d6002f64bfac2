"""The learner's gRPC handlers: check, decode and queue what actors send; hand out weights.

Handlers run on gRPC's thread pool and never touch the networks or buffers: a push is decoded
and validated completely (a bad message is refused with ``INVALID_ARGUMENT`` and nothing of it
is kept), then queued for the training loop, which owns all learning state. Weights are
published by the loop as one immutable message that handlers only read; ``StreamWeights``
handlers sleep on a condition until the loop publishes a newer one.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import numpy as np

from robot_learning.hil.messages import Transition, WireSchema
from robot_learning.hil.proto import hil_pb2 as pb
from robot_learning.hil.transport import PROTOCOL_VERSION, TransportError, sha256_hex

log = logging.getLogger(__name__)

#: seconds a weight stream sleeps between checks that its caller is still there
STREAM_POLL_S = 0.5


@dataclass
class Delivery:
    """One accepted push: the actor, its decoded transitions and finished episodes."""

    actor_id: str
    transitions: list[Transition]
    episodes: list[dict]
    new_connection: bool = False


@dataclass
class ServiceState:
    """What the handlers share with the loop (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    last_sequence: dict[str, int] = field(default_factory=dict)
    greeted: set[str] = field(default_factory=set)
    queued: int = 0
    env_steps: int = 0
    backlog: int = 0
    stop: bool = False


class LearnerService:
    """The three RPCs of ``robot_learning.hil.v1.Learner`` (see ``proto/hil.proto``)."""

    def __init__(
        self, schema: WireSchema, spec_hash: str, arch_hash: str, queue_limit: int
    ) -> None:
        self.schema, self.spec_hash, self.arch_hash = schema, spec_hash, arch_hash
        self.queue_limit = queue_limit
        self.learner_id = uuid.uuid4().hex
        self.inbox: queue.Queue[Delivery] = queue.Queue()
        self.state = ServiceState()
        self._weights = pb.Weights(version=0)
        self._published = threading.Condition()
        self._closed = False

    # ---------------------------------------------------------------- loop side
    def publish(self, version: int, payload: bytes) -> None:
        """Make ``payload`` (safetensors bytes of the actor network) the current weights and
        wake the weight streams."""
        weights = pb.Weights(
            version=version, sha256=sha256_hex(payload), payload=payload, arch_sha256=self.arch_hash
        )
        with self._published:
            self._weights = weights
            self._published.notify_all()

    def close(self) -> None:
        """End every open weight stream (the run is over)."""
        with self._published:
            self._closed = True
            self._published.notify_all()

    @property
    def version(self) -> int:
        """The published weights' version."""
        return self._weights.version

    def take(self, timeout_s: float) -> list[Delivery]:
        """Every queued delivery (waits up to ``timeout_s`` for the first)."""
        out: list[Delivery] = []
        try:
            out.append(self.inbox.get(timeout=timeout_s))
            while True:
                out.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        with self.state.lock:
            self.state.queued -= sum(len(d.transitions) for d in out)
        return out

    def set_progress(self, env_steps: int, backlog: int = 0, stop: bool = False) -> None:
        """What pushes report back: the stored step count, the steps not yet trained on and
        whether the run is over."""
        with self.state.lock:
            self.state.env_steps, self.state.backlog, self.state.stop = env_steps, backlog, stop

    # ---------------------------------------------------------------- RPCs
    def Hello(self, request: pb.HelloRequest, context: grpc.ServicerContext) -> pb.HelloReply:
        """Check protocol, feature spec and architecture; register the actor."""
        problems = []
        if request.protocol_version != PROTOCOL_VERSION:
            problems.append(
                f"protocol {request.protocol_version!r} != the learner's {PROTOCOL_VERSION!r}: "
                "run the same robot-learning version on both machines"
            )
        if request.spec_sha256 != self.spec_hash:
            problems.append(
                "the actor's task features differ from the learner's: same task= and obs= on both"
            )
        if request.arch_sha256 != self.arch_hash:
            problems.append(
                "the actor's network differs from the learner's: same algo.hidden, algo.encoder.* "
                "and algo.learner_images on both"
            )
        if not request.actor_id or len(request.actor_id) > 128:
            problems.append("actor_id must be 1-128 characters")
        if problems:
            log.warning("refused actor %r: %s", request.actor_id, "; ".join(problems))
            return pb.HelloReply(
                accepted=False, reason="; ".join(problems), learner_id=self.learner_id
            )
        with self.state.lock:
            self.state.greeted.add(request.actor_id)
            self.state.last_sequence.pop(request.actor_id, None)
        self.inbox.put(Delivery(request.actor_id, [], [], new_connection=True))
        log.info("actor %s connected", request.actor_id)
        return pb.HelloReply(accepted=True, policy_version=self.version, learner_id=self.learner_id)

    def PushTransitions(
        self, request: pb.TransitionBatch, context: grpc.ServicerContext
    ) -> pb.PushReply:
        """Validate and queue a batch; duplicates (a retried sequence) are acknowledged, not stored."""
        actor, n = request.actor_id, len(request.transitions)
        with self.state.lock:
            known = actor in self.state.greeted
            duplicate = request.sequence <= self.state.last_sequence.get(actor, -1)
            full = self.state.queued + n > self.queue_limit
            stop, steps, backlog = self.state.stop, self.state.env_steps, self.state.backlog
        if not known:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "unknown actor: call Hello first")
        if duplicate:
            return pb.PushReply(
                accepted=0,
                policy_version=self.version,
                env_steps=steps,
                stop=stop,
                backlog_steps=backlog,
            )
        if full:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "learner queue full: retry later")
        try:
            transitions = [Transition.from_proto(t, self.schema) for t in request.transitions]
            episodes = [_episode(e) for e in request.episodes]
        except (TransportError, ValueError) as exc:
            log.warning("refused a batch from %s: %s", actor, exc)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad transition batch: {exc}")
        with self.state.lock:
            self.state.last_sequence[actor] = request.sequence
            self.state.queued += n
        self.inbox.put(Delivery(actor, transitions, episodes))
        return pb.PushReply(
            accepted=n,
            policy_version=self.version,
            env_steps=steps,
            stop=stop,
            backlog_steps=backlog + n,
        )

    def PullWeights(self, request: pb.WeightsRequest, context: grpc.ServicerContext) -> pb.Weights:
        """The current weights when newer than ``have_version``, else an empty message."""
        weights = self._weights
        if weights.version > request.have_version:
            return weights
        return pb.Weights(version=0)

    def StreamWeights(
        self, request: pb.WeightsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.Weights]:
        """Each newer version as it is published (the newest when several were), until the
        caller's deadline, a cancelled call or :meth:`close`."""
        have = request.have_version
        while context.is_active():
            with self._published:
                self._published.wait_for(
                    lambda have=have: self._closed or self._weights.version > have,
                    timeout=STREAM_POLL_S,
                )
                weights, closed = self._weights, self._closed
            if closed:
                return
            if weights.version > have:
                have = weights.version
                yield weights

    def handlers(self) -> dict:
        """Method name -> handler, for :func:`robot_learning.hil.transport.serve`."""
        return {
            "Hello": self.Hello,
            "PushTransitions": self.PushTransitions,
            "PullWeights": self.PullWeights,
            "StreamWeights": self.StreamWeights,
        }


def _episode(msg: pb.EpisodeSummary) -> dict:
    """An episode summary as a dict, checked for sane values."""
    out = {
        "episode": int(msg.episode),
        "return": float(msg.episode_return),
        "length": int(msg.length),
        "success": bool(msg.success),
        "interventions": int(msg.interventions),
        "intervention_steps": int(msg.intervention_steps),
        "policy_version": int(msg.policy_version),
    }
    if out["length"] < 0 or not np.isfinite(out["return"]):
        raise ValueError(f"episode summary {out} is not valid")
    return out
