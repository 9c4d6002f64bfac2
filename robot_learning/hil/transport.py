"""The actor <-> learner wire: typed protobuf messages over gRPC, authenticated, bounded, no pickle.

* **Tensors** travel as dtype + shape + raw C-order bytes (:func:`encode_array` /
  :func:`decode_array`); decoding checks the dtype against an allow-list, the byte count
  against the shape and the shape against the expected feature, so a garbage payload is an
  error for that call only, never a crash of the learner.
* **Authentication**: every call carries ``authorization: Bearer <token>`` metadata, checked in
  constant time by :class:`TokenInterceptor` on the server before any handler runs. With
  certificate files the channel is TLS, and mutual TLS when the server is given a client CA
  (``require_client_auth``): a client without a certificate signed by that CA is refused
  during the handshake.
* **Limits**: the server refuses messages above ``max_message_mb`` (gRPC's own limit, checked
  before parsing); every client call has a deadline.
* The server binds ``127.0.0.1`` unless told otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from robot_learning.hil.proto import hil_pb2 as pb

log = logging.getLogger(__name__)

#: bumped whenever a message or its meaning changes; the handshake refuses any other
PROTOCOL_VERSION = "robot_learning.hil/2"
SERVICE = "robot_learning.hil.v1.Learner"
#: array dtypes accepted on the wire (no object or void dtypes)
WIRE_DTYPES = ("float32", "float64", "int64", "int32", "uint8", "bool")
TOKEN_ENV = "ROBOT_LEARNING_HIL_TOKEN"


class TransportError(RuntimeError):
    """A message or a connection setting is wrong; the text says which and how to fix it."""


# ----------------------------------------------------------------------------- tensors
def encode_array(array: Any) -> pb.Tensor:
    """A numpy array (or scalar) as a :class:`Tensor` message."""
    arr = np.ascontiguousarray(np.asarray(array))
    if arr.dtype.name not in WIRE_DTYPES:
        raise TransportError(f"dtype {arr.dtype} cannot travel; use one of {WIRE_DTYPES}")
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return pb.Tensor(dtype=arr.dtype.name, shape=list(arr.shape), data=little.tobytes())


def decode_array(msg: pb.Tensor, expect: tuple[str, tuple[int, ...]] | None = None) -> np.ndarray:
    """Inverse of :func:`encode_array`; ``expect=(dtype, shape)`` also checks both."""
    if msg.dtype not in WIRE_DTYPES:
        raise TransportError(f"tensor dtype {msg.dtype!r} is not one of {WIRE_DTYPES}")
    shape = tuple(int(s) for s in msg.shape)
    if any(s < 0 for s in shape):
        raise TransportError(f"tensor shape {shape} has a negative size")
    dtype = np.dtype(msg.dtype).newbyteorder("<")
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != len(msg.data):
        raise TransportError(
            f"tensor of shape {shape} {msg.dtype} needs {size} bytes, got {len(msg.data)}"
        )
    arr = np.frombuffer(msg.data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    if expect is not None and (msg.dtype, shape) != (expect[0], tuple(expect[1])):
        raise TransportError(
            f"tensor is {msg.dtype} {shape}, expected {expect[0]} {tuple(expect[1])}"
        )
    return arr


def encode_map(arrays: Mapping[str, Any]) -> pb.TensorMap:
    """A dict of arrays as a :class:`TensorMap`."""
    out = pb.TensorMap()
    for key, value in arrays.items():
        out.items[key].CopyFrom(encode_array(value))
    return out


def decode_map(
    msg: pb.TensorMap, expect: Mapping[str, tuple[str, tuple[int, ...]]] | None = None
) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_map`; with ``expect`` the keys must match exactly."""
    if expect is not None and set(msg.items) != set(expect):
        missing, extra = sorted(set(expect) - set(msg.items)), sorted(set(msg.items) - set(expect))
        raise TransportError(f"observation keys differ: missing {missing}, unexpected {extra}")
    return {k: decode_array(v, None if expect is None else expect[k]) for k, v in msg.items.items()}


def sha256_hex(data: bytes | str) -> str:
    """Hex SHA-256 of bytes (or of a string's UTF-8)."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def canonical_hash(obj: Any) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys): for feature specs and architectures."""
    return sha256_hex(json.dumps(obj, sort_keys=True, separators=(",", ":")))


# ----------------------------------------------------------------------------- security
@dataclass
class Security:
    """Who may talk to whom: a shared token, and optionally TLS or mutual TLS.

    The token is required (``token=`` or the ``ROBOT_LEARNING_HIL_TOKEN`` environment variable).
    TLS: the server needs ``cert`` + ``key``; clients need ``ca`` (to check the server). Mutual
    TLS: also ``client_ca`` on the server, and ``cert`` + ``key`` on every client.
    """

    token: str | None = None
    cert: str | None = None
    """PEM certificate of this side (server: its certificate; client: its client certificate)."""
    key: str | None = None
    """PEM private key for ``cert``."""
    ca: str | None = None
    """Client side: PEM CA that signed the server's certificate (turns TLS on)."""
    client_ca: str | None = None
    """Server side: PEM CA that must have signed every client's certificate (mutual TLS)."""
    server_name: str | None = None
    """Client side: the name to verify in the server certificate (default: the host dialled)."""

    def resolved_token(self) -> str:
        """The token, from the setting or the environment; an error naming both when absent."""
        token = self.token or os.environ.get(TOKEN_ENV)
        if not token:
            raise TransportError(
                f"hil needs a shared token: pass token=<secret> or set {TOKEN_ENV} "
                "(the same value on the learner and every actor)"
            )
        if len(token) < 8:
            raise TransportError(
                "the hil token is shorter than 8 characters; use a long random secret"
            )
        return token

    def _read(self, name: str) -> bytes | None:
        path = getattr(self, name)
        if path is None:
            return None
        p = Path(path).expanduser()
        if not p.is_file():
            raise TransportError(f"{name}={path}: no such file")
        return p.read_bytes()

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS (or mTLS) credentials for the server; None for plaintext."""
        cert, key, client_ca = self._read("cert"), self._read("key"), self._read("client_ca")
        if cert is None and key is None:
            if client_ca is not None:
                raise TransportError("client_ca (mutual TLS) needs the server's own cert= and key=")
            return None
        if cert is None or key is None:
            raise TransportError("TLS needs both cert= and key= on the learner")
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials for a client (with its certificate for mutual TLS); None for plaintext."""
        ca, cert, key = self._read("ca"), self._read("cert"), self._read("key")
        if ca is None:
            if cert is not None:
                raise TransportError(
                    "a client certificate needs ca= (the CA of the learner's certificate)"
                )
            return None
        if (cert is None) != (key is None):
            raise TransportError("a client certificate needs both cert= and key=")
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses every call whose ``authorization`` metadata is not ``Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong hil token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation: Callable, handler_call_details: Any) -> Any:
        """Pass authenticated calls on; answer the rest with UNAUTHENTICATED."""
        got = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        got = got.encode() if isinstance(got, str) else bytes(got)
        if hmac.compare_digest(got, self._expected):
            return continuation(handler_call_details)
        log.warning("refused a call to %s: bad token", handler_call_details.method)
        return self._deny


# ----------------------------------------------------------------------------- server / client
#: (request type, response type) of every unary method of the service
METHODS = {
    "Hello": (pb.HelloRequest, pb.HelloReply),
    "PushTransitions": (pb.TransitionBatch, pb.PushReply),
    "PullWeights": (pb.WeightsRequest, pb.Weights),
}
#: (request type, type of each streamed response) of every server-streaming method
STREAMS = {
    "StreamWeights": (pb.WeightsRequest, pb.Weights),
}


def serve(
    handlers: Mapping[str, Callable[[Any, grpc.ServicerContext], Any]],
    security: Security,
    host: str = "127.0.0.1",
    port: int = 50051,
    max_message_mb: float = 64.0,
    workers: int = 8,
) -> tuple[grpc.Server, int]:
    """Start a gRPC server for ``handlers`` (method name -> ``f(request, context)``; a generator
    of responses for :data:`STREAMS`).

    Each open stream holds one of ``workers`` threads: give at least two per actor.
    Returns the server and the bound port (``port=0`` picks a free one).
    """
    limit = int(max_message_mb * 2**20)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        interceptors=[TokenInterceptor(security.resolved_token())],
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
        ],
    )
    rpc = {
        name: grpc.unary_unary_rpc_method_handler(
            handlers[name],
            request_deserializer=req.FromString,
            response_serializer=resp.SerializeToString,
        )
        for name, (req, resp) in METHODS.items()
    }
    rpc |= {
        name: grpc.unary_stream_rpc_method_handler(
            handlers[name],
            request_deserializer=req.FromString,
            response_serializer=resp.SerializeToString,
        )
        for name, (req, resp) in STREAMS.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, rpc),))
    creds = security.server_credentials()
    if creds is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "the learner listens on %s without TLS: the token and all data travel in clear; "
            "pass transport.cert= and transport.key= (scripts/make_hil_certs.sh makes them)",
            host,
        )
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    if bound == 0:
        raise TransportError(
            f"cannot bind the learner to {address} (in use, or not this machine's address)"
        )
    server.start()
    log.info(
        "learner listening on %s:%d (%s)", host, bound, "TLS" if creds else "plaintext, token only"
    )
    return server, bound


class LearnerClient:
    """An actor's connection to the learner: one method per RPC, each with a deadline."""

    def __init__(
        self,
        address: str,
        security: Security,
        timeout_s: float = 10.0,
        max_message_mb: float = 64.0,
    ) -> None:
        limit = int(max_message_mb * 2**20)
        options = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ]
        if security.server_name:
            options.append(("grpc.ssl_target_name_override", security.server_name))
        creds = security.channel_credentials()
        self.channel = (
            grpc.secure_channel(address, creds, options=options)
            if creds
            else grpc.insecure_channel(address, options=options)
        )
        self.metadata = (("authorization", f"Bearer {security.resolved_token()}"),)
        self.timeout_s, self.address = timeout_s, address
        self._calls = {
            name: self.channel.unary_unary(
                f"/{SERVICE}/{name}",
                request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString,
            )
            for name, (req, resp) in METHODS.items()
        }
        self._streams = {
            name: self.channel.unary_stream(
                f"/{SERVICE}/{name}",
                request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString,
            )
            for name, (req, resp) in STREAMS.items()
        }

    def stream(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        """Open the server stream ``method`` with the token and a deadline for the whole stream;
        iterate the result (it raises ``grpc.RpcError`` on failure, DEADLINE_EXCEEDED at the end)."""
        return self._streams[method](
            request, timeout=timeout_s or self.timeout_s, metadata=self.metadata
        )

    def call(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        """Call ``method`` with the token and a deadline; raises ``grpc.RpcError`` on failure."""
        return self._calls[method](
            request, timeout=timeout_s or self.timeout_s, metadata=self.metadata
        )

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()
