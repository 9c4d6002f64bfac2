"""Policy -> ONNX graph: trace ``export_forward`` with torch's dynamo exporter, check, simplify, verify.

The graph takes the observation keys (``[batch, n_obs_steps, *shape]``; float32 states, uint8
HWC images) and ``noise`` (``[batch, horizon, A]``) and returns the raw action chunk ``action``
(``[batch, horizon, A]``); a policy that is not a controller names its own output
(``Policy.graph_output``, e.g. a reward classifier's ``success_probability`` ``[batch]``). Normalisation, the observation encoder, the whole sampler loop
(unrolled: its step count is fixed at export) and un-normalisation are inside, so a runtime only
feeds arrays. The batch dimension is dynamic.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from robot_learning.export.exporter import ExportError
from robot_learning.language import TOKEN_MASK_KEY, TOKENS_KEY
from robot_learning.policy import Policy
from robot_learning.runtime.bundle import NOISE, OUTPUT

log = logging.getLogger(__name__)

#: ONNX opset of exported graphs (onnxruntime >= 1.16 and TensorRT >= 10 read it)
OPSET = 18
#: instructions of the parity check's inputs (language policies)
EXAMPLE_INSTRUCTIONS = ("lift the cube", "push the T", "go left")
#: largest |bundle - torch| accepted when checking a fresh graph (fp32)
PARITY_TOL = 1e-4


class PolicyGraph(nn.Module):
    """``policy.export_forward`` with positional tensors: the input keys in order, then noise."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy
        self.keys = list(policy.graph_input_keys)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        *obs, noise = tensors
        return self.policy.export_forward(dict(zip(self.keys, obs, strict=True)), noise)


def example_inputs(policy: Policy, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the graph's shapes and dtypes, inside the data's range.

    Images are uniform uint8; states are drawn within the normalisation statistics (uniform in
    [min, max], or mean +- std), because values far outside the data (e.g. a constant feature
    moved by 1) blow up through the normaliser and make the parity check meaningless.
    """
    rng = np.random.default_rng(seed)
    stats = policy.normalizer.stats_dict()
    out: dict[str, np.ndarray] = {}
    for key in policy.input_keys:
        shape = (batch, policy.config.n_obs_steps, *policy.features[key].shape)
        s = {k: np.asarray(v, np.float32) for k, v in stats.get(key, {}).items()}
        if policy.features[key].is_image:
            out[key] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif "min" in s:
            out[key] = (s["min"] + (s["max"] - s["min"]) * rng.uniform(0.0, 1.0, shape)).astype(
                np.float32
            )
        elif "mean" in s:
            out[key] = (s["mean"] + s["std"] * rng.uniform(-1.0, 1.0, shape)).astype(np.float32)
        else:
            out[key] = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    if policy.language_tokens is not None:  # valid token ids of varied instructions
        texts = [EXAMPLE_INSTRUCTIONS[(seed + i) % len(EXAMPLE_INSTRUCTIONS)] for i in range(batch)]
        out[TOKENS_KEY], out[TOKEN_MASK_KEY] = policy.tokenizer.encode(texts)
    out[NOISE] = rng.standard_normal((batch, *policy.noise_shape)).astype(np.float32)
    return out


def export_onnx(
    policy: Policy, path: str | Path, simplify: bool = True, opset: int = OPSET
) -> dict[str, Any]:
    """Write ``policy`` as an ONNX graph at ``path``; returns facts for ``policy.json``.

    The graph is checked with ``onnx.checker`` (full check with shape inference) and compared
    with the torch policy on random inputs at batch 1 and 3; with ``simplify`` the graph is
    also simplified with onnxslim and kept only if it still matches.
    """
    policy = policy.eval()

    def reference(inputs: dict[str, np.ndarray]) -> np.ndarray:
        obs = {k: torch.from_numpy(inputs[k]) for k in policy.graph_input_keys}
        return policy.graph_reference(obs, noise=torch.from_numpy(inputs[NOISE])).numpy()

    return export_graph(
        PolicyGraph(policy),
        [*policy.graph_input_keys, NOISE],
        lambda b, s: example_inputs(policy, b, s),
        reference,
        path,
        simplify=simplify,
        opset=opset,
        what=f"policy {policy.name!r}",
        output=policy.graph_output,
    )


def export_graph(
    module: nn.Module,
    names: list[str],
    make_inputs: Callable[[int, int], dict[str, np.ndarray]],
    reference: Callable[[dict[str, np.ndarray]], np.ndarray],
    path: str | Path,
    simplify: bool = True,
    opset: int = OPSET,
    what: str = "module",
    output: str = OUTPUT,
) -> dict[str, Any]:
    """Export ``module`` (positional inputs ``names``, batch dimension dynamic, one output named
    ``output``) to ``path`` and verify it.

    ``make_inputs(batch, seed)`` gives valid random inputs by name; ``reference(inputs)`` the torch
    result the graph must reproduce within :data:`PARITY_TOL`. Checks as :func:`export_onnx`.
    """
    path = Path(path)
    module = module.eval()
    example = make_inputs(2, 0)
    args = tuple(torch.from_numpy(example[n]) for n in names)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter
        try:
            program = torch.onnx.export(
                module, args, dynamo=True, input_names=names, output_names=[output],
                dynamic_shapes=(tuple({0: batch} for _ in names),), opset_version=opset, external_data=False, verbose=False,
            )  # fmt: skip
        except Exception as exc:  # the exporter raises many internal types; say what failed
            raise ExportError(
                f"torch.onnx.export failed for {what}: {type(exc).__name__}: {exc}"
            ) from exc
    model = program.model_proto
    _check(model, what)

    def max_error(candidate: onnx.ModelProto) -> float:
        return _max_error(candidate, make_inputs, reference)

    tried_simplify = False
    if simplify:
        slim = _simplified(model)
        if slim is not None and max_error(slim) <= PARITY_TOL:
            model, tried_simplify = slim, True
        else:
            log.warning(
                "onnxslim's graph did not pass the parity check; keeping the unsimplified graph"
            )
    error = max_error(model)
    if not error <= PARITY_TOL:
        raise ExportError(
            f"The exported graph differs from the torch {what} by {error:.2e} (> {PARITY_TOL}); not writing it"
        )
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save_model(model, str(tmp))
    tmp.replace(path)
    return {
        "opset": opset, "simplified": tried_simplify, "parity_max_abs_error": float(error),
        "nodes": len(model.graph.node), "graph_inputs": [i.name for i in model.graph.input],
    }  # fmt: skip


def _check(model: onnx.ModelProto, what: str) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected the graph of {what}: {exc}") from exc


def _simplified(model: onnx.ModelProto) -> onnx.ModelProto | None:
    try:
        import onnxslim

        slim = onnxslim.slim(model)
        onnx.checker.check_model(slim, full_check=True)
        return slim
    except Exception as exc:  # noqa: BLE001  (simplification is an optional improvement)
        log.warning(
            "onnxslim could not simplify the graph (%s: %s); keeping it as exported",
            type(exc).__name__,
            exc,
        )
        return None


def _max_error(
    model: onnx.ModelProto,
    make_inputs: Callable[[int, int], dict[str, np.ndarray]],
    reference: Callable[[dict[str, np.ndarray]], np.ndarray],
) -> float:
    """Largest |onnxruntime - torch| over random inputs at batch 1 and 3 (same noise)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}  # a policy that ignores noise has no noise input
    worst = 0.0
    for batch, seed in ((1, 1), (3, 2)):
        inputs = make_inputs(batch, seed)
        got = session.run(None, {k: v for k, v in inputs.items() if k in names})[0]
        with torch.no_grad():
            want = np.asarray(reference(inputs))
        if got.shape != want.shape:
            return float("inf")
        worst = max(worst, float(np.abs(got - want).max()))
    return worst
