"""The policy protocol shared by the whole zoo, and its checkpoint format.

Every zoo member subclasses :class:`Policy` and registers with ``@register_policy("name")``.
The base class owns what is identical for every member: the observation history and the
receding-horizon action queue behind :meth:`Policy.select_action`, normalisation (built from
dataset statistics, stored in the weights) and ``save``/``load`` (``model.safetensors`` +
``config.json``; never pickle). Subclasses implement :meth:`Policy.predict_chunk` (batched,
noise as an explicit input) and :meth:`Policy.compute_loss`.

Batch layout (training and ``predict_chunk``): every observation key holds
``[B, n_obs_steps, *feature_shape]`` (images uint8 or float, HWC as stored in datasets);
``action`` holds ``[B, horizon, action_dim]`` raw (unnormalised) values and
``action_is_pad`` ``[B, horizon]`` marks steps past the episode end.
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from robot_learning.features import ACTION, FeatureMismatchError, FeatureSpec
from robot_learning.fileio import naming_path
from robot_learning.language import TASK_KEY, TOKEN_MASK_KEY, TOKENS_KEY
from robot_learning.normalize import Normalizer, default_modes
from robot_learning.registry import Registry

if TYPE_CHECKING:
    from robot_learning.training.windows import WindowDataset

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


@dataclass
class PolicyConfig:
    """Fields every policy has; a zoo member's config subclasses this."""

    n_obs_steps: int = 2
    """Observation horizon: how many past frames (including the current one) the policy sees."""
    horizon: int = 16
    """Prediction horizon: length of each predicted action chunk."""
    n_action_steps: int = 8
    """Executed steps per chunk before re-planning (receding horizon)."""
    input_keys: list[str] | None = None
    """Observation features the policy uses; None = every observation feature of the dataset."""
    state_norm: str = "min_max"
    """Normalisation of non-image observations: min_max or mean_std."""
    action_norm: str = "min_max"
    """Normalisation of actions: min_max or mean_std."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes carried into the checkpoint (e.g. the training command)."""

    def __post_init__(self) -> None:
        if self.n_obs_steps < 1:
            raise ValueError(f"n_obs_steps={self.n_obs_steps} must be >= 1")
        if self.horizon < 1:
            raise ValueError(f"horizon={self.horizon} must be >= 1")
        # actions for steps n_obs_steps-1 .. n_obs_steps-2+n_action_steps must exist in the chunk
        if not 1 <= self.n_action_steps <= self.horizon - self.n_obs_steps + 1:
            raise ValueError(
                f"n_action_steps={self.n_action_steps} must be in [1, horizon - n_obs_steps + 1] = "
                f"[1, {self.horizon - self.n_obs_steps + 1}] (horizon={self.horizon}, n_obs_steps={self.n_obs_steps})"
            )


POLICIES: Registry[type[Policy]] = Registry(
    "policy", discover=("policies",), entry_points="robot_learning.policies"
)


def register_policy(name: str):
    """Class decorator registering a :class:`Policy` subclass under ``name``."""

    def deco(cls):
        cls.name = name
        return POLICIES.register(name)(cls)

    return deco


class Policy(nn.Module):
    """Base class of every zoo member (see the module docstring for the batch layout)."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[PolicyConfig]] = PolicyConfig
    #: False for zoo members that are not controllers (``reward_classifier``): they predict no
    #: action chunk, so ``predict_chunk``/``select_action``, evaluation and deployment do not
    #: apply, and the registry-driven controller tests skip them.
    predicts_actions: ClassVar[bool] = True
    #: True for policies conditioned on a language instruction (``vla``): ``select_action`` and
    #: evaluation then pass the episode's instruction as ``batch["task"]`` (a string per sample)
    uses_language: ClassVar[bool] = False
    #: name of the exported graph's output (controllers: the raw action chunk)
    graph_output: ClassVar[str] = ACTION

    def __init__(self, config: PolicyConfig, features: FeatureSpec, stats: dict | None) -> None:
        super().__init__()
        self.config = config
        input_keys = config.input_keys or features.observation_keys
        if ACTION not in features:
            raise FeatureMismatchError(f"Policy features need {ACTION!r}; got {sorted(features)}")
        self.features = features.select([*input_keys, ACTION])
        self.input_keys = list(input_keys)
        self.image_keys = [k for k in self.input_keys if self.features[k].is_image]
        self.state_keys = [k for k in self.input_keys if not self.features[k].is_image]
        self.action_dim = int(np.prod(self.features.action.shape))
        modes = default_modes(self.features, state=config.state_norm, action=config.action_norm)
        self.normalizer = Normalizer(self.features, modes, stats)
        self._obs_history: deque[dict[str, torch.Tensor]] = deque(maxlen=config.n_obs_steps)
        self._action_queue: deque[torch.Tensor] = deque()

    # ------------------------------------------------------------------ to implement
    def predict_chunk(
        self, batch: dict[str, torch.Tensor], noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Batched inference: observations [B, n_obs_steps, ...] -> raw actions [B, horizon, A].

        ``noise`` ([B, horizon, A], standard normal) makes generative samplers deterministic;
        None draws it from the global torch RNG.
        """
        raise NotImplementedError

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss for one batch (see module docstring) and named scalar metrics."""
        raise NotImplementedError

    # ------------------------------------------------------------------ sampler and export hooks
    def inference_settings(self) -> dict[str, Any]:
        """How :meth:`predict_chunk` samples, as recorded in bundles: ``{"name": ..., "steps": k}``."""
        return {"name": "deterministic", "steps": 1}

    def set_inference(self, sampler: str | None = None, steps: int | None = None) -> None:
        """Change the sampler and/or its step count used by :meth:`predict_chunk` and export."""
        if sampler is not None or steps is not None:
            raise ValueError(
                f"policy {self.name!r} has no configurable sampler (got sampler={sampler}, steps={steps})"
            )

    @property
    def language_tokens(self) -> int | None:
        """Token length of the instruction input of exported graphs (None: no language)."""
        return None

    @property
    def graph_input_keys(self) -> list[str]:
        """Inputs of an exported graph before the noise: the observation keys, then the
        instruction's token ids and mask for language policies."""
        extra = [TOKENS_KEY, TOKEN_MASK_KEY] if self.language_tokens is not None else []
        return [*self.input_keys, *extra]

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of one sample's sampler noise (``predict_chunk``'s ``noise`` without the batch dim)."""
        return (self.config.horizon, self.action_dim)

    def export_forward(self, batch: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        """What an exported graph computes: :meth:`predict_chunk` written with traceable tensor ops.

        Must equal ``predict_chunk(batch, noise)`` (the export parity tests check it). The default
        is ``predict_chunk`` itself; override when it uses untraceable code (e.g. a Python
        scheduler object).
        """
        return self.predict_chunk(batch, noise)

    def graph_reference(
        self, batch: dict[str, torch.Tensor], noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """What the exported graph computes, in eager torch: the reference of the export parity
        check and what the ``torch`` bundle runtime serves. Controllers: :meth:`predict_chunk`."""
        return self.predict_chunk(batch, noise)

    def bundle_metadata(self, checkpoint_meta: dict[str, Any]) -> dict[str, Any]:
        """Extra top-level ``policy.json`` fields of this policy's bundles (default: none).

        ``checkpoint_meta`` is the source checkpoint's ``config.json``. A policy whose graph is
        not an action chunk declares itself here (``reward_classifier``: its threshold and metrics).
        """
        return {}

    # ------------------------------------------------------------------ training hooks
    # ``robot-learning train`` fits every zoo member with one loop built around (observation
    # window, action chunk) batches. These two hooks are the whole extension point for members
    # that need more: per-frame targets other than actions, held-out data, a post-fit step.
    def prepare_training(self, windows: WindowDataset) -> WindowDataset:
        """Called once before the first step (again on resume) with every window of the dataset;
        returns the windows to train on. Default: all of them, unchanged.

        A policy may attach per-frame targets (:meth:`WindowDataset.with_targets`), hold out
        episodes (:meth:`WindowDataset.subset`) and set data-dependent buffers (e.g. class
        weights). It must be a deterministic function of the windows and its config, so that a
        resumed run trains on the same windows.
        """
        return windows

    def finish_training(self, windows: WindowDataset, out: Path) -> dict[str, Any]:
        """Called once on the deployable weights (EMA when on) after the last step, before
        ``final/`` is saved, with every window of the dataset (as given to
        :meth:`prepare_training`) and the run folder. May set buffers that must ship with the
        weights (e.g. a decision threshold picked on held-out frames) and write reports into
        ``out``. Returns numbers for ``train.json`` (``post_training``); a ``summary`` string
        in it is printed by the CLI. Default: nothing."""
        return {}

    # ------------------------------------------------------------------ single-step control
    def reset(self) -> None:
        """Forget the observation history and any queued actions (call at episode start)."""
        self._obs_history.clear()
        self._action_queue.clear()

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any], noise: torch.Tensor | None = None) -> np.ndarray:
        """One control step: queue a new chunk when empty, pop the next action (raw units).

        ``obs`` holds one frame per input key (no batch/time dims) as numpy arrays or tensors.
        """
        missing = [k for k in self.input_keys if k not in obs]
        if missing:
            raise FeatureMismatchError(
                f"Observation is missing {missing}; policy inputs are {self.input_keys}"
            )
        frame = {k: torch.as_tensor(np.asarray(obs[k])) for k in self.input_keys}
        if not self._obs_history:  # pad the history with the first frame of the episode
            self._obs_history.extend([frame] * self.config.n_obs_steps)
        else:
            self._obs_history.append(frame)
        if not self._action_queue:
            device = self.device
            batch = {
                k: torch.stack([f[k] for f in self._obs_history])[None].to(device)
                for k in self.input_keys
            }
            if self.uses_language:
                batch[TASK_KEY] = [self._instruction(obs)]
            chunk = self.predict_chunk(batch, noise=None if noise is None else noise.to(device))[0]
            start = self.config.n_obs_steps - 1  # chunk index of the current step
            self._action_queue.extend(chunk[start : start + self.config.n_action_steps])
        return self._action_queue.popleft().cpu().numpy().astype(np.float32)

    def _instruction(self, obs: dict[str, Any]) -> str:
        if TASK_KEY not in obs:
            raise FeatureMismatchError(
                f"policy {self.name!r} follows a language instruction: put it in the observation "
                f"as obs[{TASK_KEY!r}] = 'lift the red cube' (evaluation passes the task's own)"
            )
        return str(obs[TASK_KEY])

    @property
    def device(self) -> torch.device:
        """Device of the policy's parameters (CPU if it has none)."""
        param = next(self.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` + ``config.json`` into ``directory`` (atomic per file)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tmp = directory / f".{WEIGHTS_FILE}.tmp"
        try:
            with naming_path(directory / WEIGHTS_FILE):
                save_file(tensors, str(tmp))
            tmp.replace(directory / WEIGHTS_FILE)
        finally:
            tmp.unlink(missing_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "policy": self.name,
            "config": dataclasses.asdict(self.config),
            "features": self.features.to_dict(),
            "normalization": {
                "modes": self.normalizer.modes,
                "stats": self.normalizer.stats_dict(),
            },
            **(extra or {}),
        }
        tmp = directory / f".{CONFIG_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(directory / CONFIG_FILE)
        return directory

    @staticmethod
    def load(directory: str | Path, map_location: str = "cpu") -> Policy:
        """Rebuild any zoo policy saved with :meth:`save` (dispatches on the stored name)."""
        directory = Path(directory)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(
                    f"{directory} is not a policy checkpoint: {name} is missing"
                )
        meta = json.loads((directory / CONFIG_FILE).read_text())
        cls = POLICIES.get(meta["policy"])
        config = cls.config_class(**meta["config"])
        features = FeatureSpec.from_dict(meta["features"])
        policy = cls(config, features, stats=None)
        state = load_file(str(directory / WEIGHTS_FILE), device=map_location)
        missing, unexpected = policy.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"Checkpoint {directory} does not fit policy {meta['policy']!r}: "
                f"missing tensors {missing[:10]}, unexpected tensors {unexpected[:10]}"
            )
        return policy.eval()
