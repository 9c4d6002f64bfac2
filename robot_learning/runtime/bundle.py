"""The bundle format: ``policy.json`` and the checks that make a bad bundle fail at load time.

A bundle is a folder written by ``robot-learning export``::

    policy.json              what the graph computes and how to feed it (below)
    model.onnx               the graph: observations + noise -> raw action chunk
    torch/                   the source checkpoint (config.json + model.safetensors), for the
                             torch reference runtime; optional
    tensorrt/*.engine        TensorRT engines built from model.onnx (cache; rebuilt when stale)
    residual.onnx            residual RL bundles only: per-step ``[obs, base action] -> action``
                             on top of the base graph (``policy.json`` ``residual`` section)

A reward classifier's bundle (``policy.json`` ``reward_classifier`` section: decision threshold,
held-out metrics) has the same layout, but ``model.onnx`` maps the observations to the success
probability ``[batch]`` instead of an action chunk; load it with
:func:`robot_learning.runtime.reward.load_reward_model`.

``policy.json`` holds the feature spec, the normalisation statistics (applied inside the graph;
kept here so a reader can see them), the horizons, the control rate, the sampler and its step
count, the declared graph inputs/outputs and a SHA-256 of every file, plus the source
checkpoint's hash. ``policy.json`` also carries a SHA-256 of its own content
(:data:`METADATA_HASH`, over :func:`canonical_json` of every other field), so editing its
metadata (action bounds, normalisation, control rate, ...) is detected like an edited graph;
:func:`write_policy_json` is the one place that writes the file and its hash.
:func:`read_bundle` verifies all of it without running anything, so a missing file, an edited
graph, edited metadata or a spec that does not match the graph is an error naming the problem
before any robot moves. Bundles of format version 1 (no metadata hash) are refused with the
advice to re-export.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from robot_learning.features import ACTION, FeatureSpec
from robot_learning.language import TOKEN_MASK_KEY, TOKENS_KEY

BUNDLE_FILE = "policy.json"
BUNDLE_FORMAT = "robot-learning-bundle"
#: 2: policy.json carries METADATA_HASH (version 1 bundles cannot prove their metadata unedited)
BUNDLE_VERSION = 2
#: policy.json field holding the SHA-256 of :func:`canonical_json` of the other fields
METADATA_HASH = "policy_sha256"
GRAPH_FILE = "model.onnx"
TORCH_DIR = "torch"
RESIDUAL_GRAPH = "residual.onnx"
#: residual graphs' input carrying the base policy's action for the current step
BASE_ACTION = "observation.base_action"
NOISE = "noise"
OUTPUT = ACTION
#: policy.json section of a reward classifier's bundle, and its graph's output
REWARD_SECTION = "reward_classifier"
REWARD_OUTPUT = "success_probability"
#: policy.json section of a language-conditioned bundle: its tokenizer (see
#: robot_learning.instruction_tokens); the graph then takes token ids and their mask
LANGUAGE_SECTION = "language"
#: symbolic batch dimension in declared shapes
BATCH = "batch"

REQUIRED_KEYS = (
    "format", "format_version", "policy", "features", "input_keys", "inputs", "outputs", "n_obs_steps",
    "horizon", "n_action_steps", "control_rate_hz", "sampler", "normalization", "files", "source",
)  # fmt: skip


class BundleError(RuntimeError):
    """A bundle is missing, incomplete, modified or inconsistent; the message says which and how to fix it."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(spec: dict[str, Any]) -> str:
    """The normalised text :data:`METADATA_HASH` covers: every field but the hash itself,
    sorted keys, no whitespace (so re-indenting the file does not change it, editing a value does)."""
    body = {k: v for k, v in spec.items() if k != METADATA_HASH}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def metadata_hash(spec: dict[str, Any]) -> str:
    """Hex SHA-256 of :func:`canonical_json` of ``spec`` (the value stored as :data:`METADATA_HASH`)."""
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()


def write_policy_json(root: str | Path, spec: dict[str, Any]) -> Path:
    """Write ``spec`` as ``root/policy.json`` with its :data:`METADATA_HASH`; returns the path.

    Every writer of ``policy.json`` (export, finetuned export, tools that legitimately edit a
    bundle) goes through here so that the stored hash always matches the content.
    """
    # round-trip first: the hash must be computed on what a reader will parse (int keys, tuples)
    spec = json.loads(json.dumps({k: v for k, v in spec.items() if k != METADATA_HASH}))
    spec[METADATA_HASH] = metadata_hash(spec)
    path = Path(root) / BUNDLE_FILE
    tmp = path.with_name(f".{BUNDLE_FILE}.tmp")
    tmp.write_text(json.dumps(spec, indent=2) + "\n")
    tmp.replace(path)
    return path


def declared_inputs(
    features: FeatureSpec,
    input_keys: list[str],
    n_obs_steps: int,
    horizon: int,
    noise: bool = True,
    language_tokens: int | None = None,
) -> list[dict]:
    """The graph inputs a policy with these settings must have, in order (observations, the
    instruction's token ids and mask when ``language_tokens`` is set, then noise).

    ``noise=False`` for graphs that do not sample (deterministic policies have no noise input).
    """
    inputs = []
    for key in input_keys:
        feat = features[key]
        dtype = "uint8" if feat.is_image else "float32"
        inputs.append({"name": key, "dtype": dtype, "shape": [BATCH, n_obs_steps, *feat.shape]})
    if language_tokens is not None:
        for key in (TOKENS_KEY, TOKEN_MASK_KEY):
            inputs.append({"name": key, "dtype": "int64", "shape": [BATCH, int(language_tokens)]})
    if noise:
        inputs.append(
            {"name": NOISE, "dtype": "float32", "shape": [BATCH, horizon, *features[ACTION].shape]}
        )
    return inputs


def declared_outputs(features: FeatureSpec, horizon: int) -> list[dict]:
    """The graph's single output: the raw (unnormalised) action chunk."""
    return [
        {"name": OUTPUT, "dtype": "float32", "shape": [BATCH, horizon, *features[ACTION].shape]}
    ]


def reward_outputs() -> list[dict]:
    """A reward classifier graph's single output: the success probability of each observation."""
    return [{"name": REWARD_OUTPUT, "dtype": "float32", "shape": [BATCH]}]


def read_bundle(bundle_dir: str | Path, verify_hashes: bool = True) -> dict[str, Any]:
    """Parse and verify ``policy.json`` of ``bundle_dir``; returns it with ``features`` as a FeatureSpec.

    Checks: the folder and ``policy.json`` exist and parse; the format and version are known;
    ``policy.json`` matches its own SHA-256 (:data:`METADATA_HASH`; always checked, it is
    cheap); every required key is present; every listed file exists with the recorded SHA-256 (an edited
    or truncated graph fails here); the declared inputs/outputs follow from the feature spec and
    horizons. Raises :class:`BundleError` listing every problem found.
    """
    root = Path(bundle_dir)
    path = root / BUNDLE_FILE
    if not root.is_dir():
        raise BundleError(
            f"Bundle {root} does not exist (export one with `robot-learning export checkpoint=DIR out={root}`)"
        )
    if not path.is_file():
        raise BundleError(f"{root} is not a bundle: {BUNDLE_FILE} is missing (re-export it)")
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); re-export the bundle") from exc
    if not isinstance(spec, dict) or spec.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{path} is not a {BUNDLE_FORMAT} policy.json (format={spec.get('format') if isinstance(spec, dict) else None!r})"
        )
    _check_version(path, spec)
    _check_metadata_hash(path, spec)
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if missing:
        raise BundleError(f"{path} lacks required keys {missing}; re-export the bundle")
    problems = _file_problems(root, spec, verify_hashes) + _spec_problems(spec)
    if problems:
        raise BundleError(f"Bundle {root} is not usable:\n  - " + "\n  - ".join(problems))
    spec = dict(spec)
    spec["features"] = FeatureSpec.from_dict(spec["features"])
    return spec


def _check_version(path: Path, spec: dict) -> None:
    version = spec.get("format_version")
    if version == BUNDLE_VERSION:
        return
    why = (
        " (version 1 bundles carry no SHA-256 of policy.json, so edits to their metadata, e.g. "
        "the action bounds, cannot be detected)"
        if version == 1
        else ""
    )
    raise BundleError(
        f"{path} has format_version={version!r}; this robot-learning reads version "
        f"{BUNDLE_VERSION}{why}. Re-export the bundle with this version "
        "(robot-learning export checkpoint=<its source checkpoint> out=DIR)."
    )


def _check_metadata_hash(path: Path, spec: dict) -> None:
    recorded = spec.get(METADATA_HASH)
    if not isinstance(recorded, str):
        raise BundleError(
            f"{path} lacks its SHA-256 ({METADATA_HASH}), so its metadata cannot be verified; "
            "re-export the bundle (robot-learning export checkpoint=<its source checkpoint> out=DIR)"
        )
    if metadata_hash(spec) != recorded:
        raise BundleError(
            f"{path} does not match its SHA-256 ({METADATA_HASH}): the metadata (e.g. action bounds, "
            "normalisation, control rate, horizons) was modified after export. Do not edit policy.json; "
            "re-export the bundle (robot-learning export checkpoint=<its source checkpoint> out=DIR, "
            "with the export settings you need, e.g. control_rate_hz=...)."
        )


def _file_problems(root: Path, spec: dict, verify_hashes: bool) -> list[str]:
    problems = []
    files = spec["files"]
    if GRAPH_FILE not in files and f"{TORCH_DIR}/model.safetensors" not in files:
        problems.append(f"policy.json lists no graph ({GRAPH_FILE}) and no torch checkpoint")
    for name, meta in sorted(files.items()):
        path = root / name
        if not path.is_file():
            problems.append(
                f"{name} is missing (policy.json lists it); copy the whole bundle folder or re-export"
            )
            continue
        if path.stat().st_size != meta.get("bytes"):
            problems.append(
                f"{name} has {path.stat().st_size} bytes, policy.json records {meta.get('bytes')} (truncated or modified)"
            )
        elif verify_hashes and sha256_file(path) != meta.get("sha256"):
            problems.append(
                f"{name} does not match its SHA-256 in policy.json (modified after export); re-export the bundle"
            )
    return problems


def _spec_problems(spec: dict) -> list[str]:
    try:
        features = FeatureSpec.from_dict(spec["features"])
    except (KeyError, TypeError, ValueError) as exc:
        return [f"features do not parse: {exc}"]
    problems = []
    keys = list(spec["input_keys"])
    unknown = [k for k in keys if k not in features]
    if unknown:
        return [f"input_keys {unknown} are not in the bundle's features {sorted(features)}"]
    if ACTION not in features:
        return [f"features lack {ACTION!r}"]
    for name in ("n_obs_steps", "horizon", "n_action_steps", "control_rate_hz"):
        if not isinstance(spec[name], int | float) or spec[name] <= 0:
            problems.append(f"{name}={spec[name]!r} must be a positive number")
    if problems:
        return problems
    if spec["n_obs_steps"] - 1 + spec["n_action_steps"] > spec["horizon"]:
        problems.append(
            f"n_obs_steps={spec['n_obs_steps']} and n_action_steps={spec['n_action_steps']} do not fit in "
            f"horizon={spec['horizon']}"
        )
    problems += _residual_problems(spec) + _reward_problems(spec)
    with_noise = any(isinstance(d, dict) and d.get("name") == NOISE for d in spec["inputs"])
    expected_in = declared_inputs(
        features,
        keys,
        spec["n_obs_steps"],
        spec["horizon"],
        noise=with_noise,
        language_tokens=language_tokens(spec),
    )
    expected_out = (
        reward_outputs() if REWARD_SECTION in spec else declared_outputs(features, spec["horizon"])
    )
    for what, got, want in (
        ("inputs", spec["inputs"], expected_in),
        ("outputs", spec["outputs"], expected_out),
    ):
        if got != want:
            problems.append(
                f"declared graph {what} {_brief(got)} do not follow from the feature spec: expected {_brief(want)}"
            )
    return problems


def language_tokens(spec: dict) -> int | None:
    """Token length of a language bundle's instruction input (None: the bundle takes none)."""
    section = spec.get(LANGUAGE_SECTION)
    if not section:
        return None
    return int(section["tokenizer"]["max_tokens"])


def residual_inputs(features: FeatureSpec, keys: list[str]) -> list[dict]:
    """Declared inputs of a residual graph: each key ``[batch, 1, *shape]`` float32."""
    return [{"name": k, "dtype": "float32", "shape": [BATCH, 1, *features[k].shape]} for k in keys]


def _residual_problems(spec: dict) -> list[str]:
    section = spec.get("residual")
    if section is None:
        return []
    try:
        features = FeatureSpec.from_dict(section["features"])
        keys, graph = list(section["input_keys"]), section["graph"]
        scale = float(section["scale"])
    except (KeyError, TypeError, ValueError) as exc:
        return [f"the residual section of policy.json is incomplete ({exc}); re-export the bundle"]
    problems = []
    if graph not in spec["files"]:
        problems.append(f"the residual graph {graph} is not listed in files")
    outside = [k for k in keys if k != BASE_ACTION and k not in spec["input_keys"]]
    if outside:
        problems.append(
            f"residual inputs {outside} are not observations the bundle receives ({spec['input_keys']})"
        )
    if BASE_ACTION not in keys or not 0 < scale <= 1:
        problems.append(
            f"residual inputs must include {BASE_ACTION!r} and scale={scale} be in (0, 1]"
        )
    if not problems and section.get("inputs") != residual_inputs(features, keys):
        problems.append(
            f"declared residual inputs {_brief(section.get('inputs'))} do not follow from its features"
        )
    return problems


def _reward_problems(spec: dict) -> list[str]:
    section = spec.get(REWARD_SECTION)
    if section is None:
        return []
    threshold = section.get("threshold") if isinstance(section, dict) else None
    if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        return [
            f"the {REWARD_SECTION} section needs a threshold in [0, 1], got {threshold!r}; "
            "re-export the bundle"
        ]
    return []


def _brief(io: list[dict]) -> str:
    try:
        return "[" + ", ".join(f"{d['name']}:{d['dtype']}{d['shape']}" for d in io) + "]"
    except (KeyError, TypeError):
        return repr(io)


def check_signature(
    spec: dict, signature: dict[str, tuple[str, tuple]] | None, runtime: str
) -> None:
    """Compare a loaded graph's inputs with ``policy.json``; :class:`BundleError` on any difference."""
    if signature is None:
        return
    declared = {
        d["name"]: (d["dtype"], tuple(None if s == BATCH else s for s in d["shape"]))
        for d in spec["inputs"]
    }
    if set(signature) != set(declared):
        raise BundleError(
            f"The graph loaded by {runtime} has inputs {sorted(signature)} but policy.json declares "
            f"{sorted(declared)}; the graph and policy.json come from different exports. Re-export the bundle."
        )
    diffs = []
    for name, (dtype, shape) in declared.items():
        got_dtype, got_shape = signature[name]
        same_shape = len(got_shape) == len(shape) and all(
            g is None or w is None or g == w for g, w in zip(got_shape, shape, strict=True)
        )
        if got_dtype != dtype or not same_shape:
            diffs.append(
                f"{name}: graph {got_dtype}{list(got_shape)} vs policy.json {dtype}{list(shape)}"
            )
    if diffs:
        raise BundleError(
            f"Graph and policy.json disagree ({runtime}): "
            + "; ".join(diffs)
            + ". Re-export the bundle."
        )
