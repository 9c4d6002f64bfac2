"""The HIL wire: exact round trips, authentication, TLS/mTLS, garbage and oversized payloads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import numpy as np
import pytest

from robot_learning.features import Feature, FeatureSpec
from robot_learning.hil.contract import HilContract, load_payload, weights_payload
from robot_learning.hil.messages import Transition
from robot_learning.hil.proto import hil_pb2 as pb
from robot_learning.hil.service import LearnerService
from robot_learning.hil.transport import (
    PROTOCOL_VERSION,
    SERVICE,
    LearnerClient,
    Security,
    TransportError,
    decode_array,
    encode_array,
    serve,
    sha256_hex,
)

TOKEN = "test-token-0123456789"
ROOT = Path(__file__).resolve().parents[1]


def _spec() -> FeatureSpec:
    return FeatureSpec(
        {
            "observation.state": Feature("float32", (3,)),
            "action": Feature(
                "float32", (2,), low=(-1.0, -1.0), high=(1.0, 1.0), control_mode="ee_delta_pos"
            ),
        }
    )


def _contract() -> HilContract:
    return HilContract.from_spec(_spec(), (8,))


def _transition(step: int = 0, **kw) -> Transition:
    rng = np.random.default_rng(step)
    return Transition(
        observation={"observation.state": rng.normal(size=3).astype(np.float32)},
        next_observation={"observation.state": rng.normal(size=3).astype(np.float32)},
        action=rng.uniform(-1, 1, 2).astype(np.float32),
        policy_action=rng.uniform(-1, 1, 2).astype(np.float32),
        step=step,
        **kw,
    )


@pytest.fixture
def learner():
    """A LearnerService for ``_contract()`` served on a free loopback port (token only)."""
    c = _contract()
    service = LearnerService(c.schema, c.spec_hash, c.arch_hash, queue_limit=100)
    service.publish(1, weights_payload(c.build_actor()))
    server, port = serve(service.handlers(), Security(token=TOKEN), port=0, max_message_mb=1.0)
    yield service, f"127.0.0.1:{port}"
    server.stop(0)


def _hello(contract: HilContract, actor_id: str = "a") -> pb.HelloRequest:
    return pb.HelloRequest(
        protocol_version=PROTOCOL_VERSION,
        actor_id=actor_id,
        spec_sha256=contract.spec_hash,
        arch_sha256=contract.arch_hash,
    )


def test_transition_round_trips_exactly():
    t = _transition(
        3,
        is_intervention=True,
        intervention_start=True,
        source="human",
        policy_version=7,
        env_reward=1.5,
        classifier_reward=1.0,
        terminated=True,
        episode=4,
    )
    t.observation["observation.images.front"] = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(
        2, 3, 3
    )
    t.next_observation["observation.images.front"] = np.full((2, 3, 3), 255, np.uint8)
    wire = t.to_proto().SerializeToString()
    back = Transition.from_proto(pb.Transition.FromString(wire))
    for key in t.observation:
        np.testing.assert_array_equal(back.observation[key], t.observation[key])
        assert back.observation[key].dtype == t.observation[key].dtype
        np.testing.assert_array_equal(back.next_observation[key], t.next_observation[key])
    np.testing.assert_array_equal(back.action, t.action)
    np.testing.assert_array_equal(back.policy_action, t.policy_action)
    for name in (
        "is_intervention",
        "intervention_start",
        "source",
        "policy_version",
        "env_reward",
        "classifier_reward",
        "terminated",
        "truncated",
        "episode",
        "step",
    ):
        assert getattr(back, name) == getattr(t, name), name


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "uint8", "bool"])
def test_arrays_round_trip_bit_exact(dtype):
    arr = (np.random.default_rng(0).normal(size=(2, 3, 4)) * 100).astype(dtype)
    np.testing.assert_array_equal(decode_array(encode_array(arr)), arr)


def test_bad_tensors_are_refused_with_the_reason():
    good = encode_array(np.zeros(3, np.float32))
    with pytest.raises(TransportError, match="needs 12 bytes"):
        decode_array(pb.Tensor(dtype="float32", shape=[3], data=b"\x00" * 11))
    with pytest.raises(TransportError, match="not one of"):
        decode_array(pb.Tensor(dtype="object", shape=[1], data=b"\x00" * 8))
    with pytest.raises(TransportError, match="expected float32 \\(4,\\)"):
        decode_array(good, ("float32", (4,)))
    with pytest.raises(TransportError, match="cannot travel"):
        encode_array(np.array(["a"], object))
    nan = _transition(0)
    nan.action = np.array([np.nan, 0], np.float32)
    with pytest.raises(TransportError, match="NaN"):
        Transition.from_proto(nan.to_proto(), _contract().schema)


def test_weights_are_checked_against_their_hash():
    c = _contract()
    src, dst = c.build_actor(), c.build_actor()
    payload = weights_payload(src)
    from robot_learning.hil.transport import sha256_hex

    with pytest.raises(TransportError, match="SHA-256"):
        load_payload(dst, payload, sha256_hex(payload + b"x"))
    load_payload(dst, payload, sha256_hex(payload))
    for a, b in zip(src.state_dict().values(), dst.state_dict().values(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
    other = HilContract.from_spec(_spec(), (16,)).build_actor()
    with pytest.raises(TransportError, match="does not fit"):
        load_payload(other, payload, sha256_hex(payload))


def test_missing_or_wrong_token_is_refused(learner):
    service, address = learner
    c = _contract()
    channel = grpc.insecure_channel(address)
    hello = channel.unary_unary(
        f"/{SERVICE}/Hello",
        request_serializer=pb.HelloRequest.SerializeToString,
        response_deserializer=pb.HelloReply.FromString,
    )
    for metadata in ((), (("authorization", "Bearer wrong-token-123"),)):
        with pytest.raises(grpc.RpcError) as err:
            hello(_hello(c), timeout=5, metadata=metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert hello(_hello(c), timeout=5, metadata=(("authorization", f"Bearer {TOKEN}"),)).accepted
    channel.close()
    with pytest.raises(TransportError, match="token"):
        Security().resolved_token()


def test_handshake_refuses_a_different_network_or_protocol(learner):
    _, address = learner
    client = LearnerClient(address, Security(token=TOKEN), timeout_s=5)
    other = HilContract.from_spec(_spec(), (16,))
    reply = client.call("Hello", _hello(other))
    assert not reply.accepted and "network differs" in reply.reason
    bad = _hello(_contract())
    bad.protocol_version = "robot_learning.hil/0"
    reply = client.call("Hello", bad)
    assert not reply.accepted and "protocol" in reply.reason
    client.close()


def test_garbage_and_oversized_payloads_do_not_hurt_the_learner(learner):
    service, address = learner
    c = _contract()
    client = LearnerClient(address, Security(token=TOKEN), timeout_s=5, max_message_mb=8)
    with pytest.raises(grpc.RpcError) as err:  # pushing before Hello
        client.call(
            "PushTransitions",
            pb.TransitionBatch(actor_id="a", transitions=[_transition().to_proto()]),
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert client.call("Hello", _hello(c)).accepted
    raw = client.channel.unary_unary(f"/{SERVICE}/PushTransitions")  # bytes in, bytes out
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\xff\x00garbage" * 10, timeout=5, metadata=client.metadata)
    assert err.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    wrong = _transition()
    wrong.observation["observation.state"] = np.zeros(5, np.float32)  # not the task's shape
    with pytest.raises(grpc.RpcError) as err:
        client.call(
            "PushTransitions",
            pb.TransitionBatch(actor_id="a", sequence=0, transitions=[wrong.to_proto()]),
        )
    assert (
        err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "expected float32 (3,)" in err.value.details()
    )
    big = pb.TransitionBatch(actor_id="a", sequence=1, transitions=[_transition().to_proto()])
    big.transitions[0].observation.items["observation.state"].data = b"\x00" * (2 * 2**20)
    with pytest.raises(grpc.RpcError) as err:
        client.call("PushTransitions", big)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert service.inbox.qsize() == 1  # only the Hello: nothing of the refused batches was queued
    reply = client.call(
        "PushTransitions",
        pb.TransitionBatch(actor_id="a", sequence=2, transitions=[_transition().to_proto()]),
    )
    assert reply.accepted == 1  # and the learner still serves
    again = client.call(
        "PushTransitions",
        pb.TransitionBatch(actor_id="a", sequence=2, transitions=[_transition().to_proto()]),
    )
    assert again.accepted == 0  # a retried batch is not stored twice
    weights = client.call("PullWeights", pb.WeightsRequest(actor_id="a", have_version=0))
    assert weights.version == 1 and weights.payload
    assert client.call("PullWeights", pb.WeightsRequest(actor_id="a", have_version=1)).version == 0
    client.close()


def test_weights_stream_to_the_actor_as_they_are_published(learner):
    """StreamWeights: the current version at once, each newer one as it is published, the newest
    when several came at once; the token is required; ``close`` ends the stream."""
    service, address = learner
    c = _contract()
    payload = weights_payload(c.build_actor())
    client = LearnerClient(address, Security(token=TOKEN), timeout_s=5)
    stream = client.stream("StreamWeights", pb.WeightsRequest(actor_id="a", have_version=0), 10)
    first = next(stream)
    assert first.version == 1 and first.sha256 == sha256_hex(first.payload)
    service.publish(2, payload)
    assert next(stream).version == 2
    service.publish(3, payload)
    service.publish(4, payload)  # before the stream woke up: only the newest travels
    assert next(stream).version in (3, 4)
    service.close()
    rest = [w.version for w in stream]  # ends (not at the deadline) after close
    assert rest in ([], [4])

    bad = LearnerClient(address, Security(token="wrong-token-123"), timeout_s=5)
    with pytest.raises(grpc.RpcError) as err:
        next(bad.stream("StreamWeights", pb.WeightsRequest(actor_id="a", have_version=0)))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    bad.close()
    client.close()


@pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is needed to make test certificates"
)
def test_mutual_tls_refuses_a_client_without_the_certificate(tmp_path):
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "make_hil_certs.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    c = _contract()
    service = LearnerService(c.schema, c.spec_hash, c.arch_hash, queue_limit=10)
    server_security = Security(
        token=TOKEN,
        cert=str(tmp_path / "learner.pem"),
        key=str(tmp_path / "learner.key"),
        client_ca=str(tmp_path / "ca.pem"),
    )
    server, port = serve(service.handlers(), server_security, port=0)
    address = f"localhost:{port}"
    try:
        with_cert = LearnerClient(
            address,
            Security(
                token=TOKEN,
                ca=str(tmp_path / "ca.pem"),
                cert=str(tmp_path / "actor.pem"),
                key=str(tmp_path / "actor.key"),
            ),
            timeout_s=5,
        )
        assert with_cert.call("Hello", _hello(c)).accepted
        with_cert.close()
        no_cert = LearnerClient(
            address, Security(token=TOKEN, ca=str(tmp_path / "ca.pem")), timeout_s=3
        )
        with pytest.raises(grpc.RpcError) as err:
            no_cert.call("Hello", _hello(c))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        no_cert.close()
        plaintext = LearnerClient(address, Security(token=TOKEN), timeout_s=3)
        with pytest.raises(grpc.RpcError):
            plaintext.call("Hello", _hello(c))
        plaintext.close()
    finally:
        server.stop(0)
    with pytest.raises(TransportError, match="cert= and key="):
        Security(token=TOKEN, cert=str(tmp_path / "learner.pem")).server_credentials()


def test_generated_module_matches_the_schema():
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) regenerates hil_pb2.py")
    from robot_learning.hil.proto.generate import main

    assert main(["--check"]) == 0, "run: python -m robot_learning.hil.proto.generate"
