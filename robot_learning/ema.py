"""Exponential moving average of model weights, used for evaluation and checkpoints.

Diffusion Policy (Chi et al., RSS 2023) evaluates an EMA of the weights with a *power-decay*
warm-up: at optimisation step ``k`` the decay is ``1 - (1 + k / inv_gamma) ** -power``, clamped
to ``[min_decay, decay]``, so early averages track the fast-changing weights and later ones
average over ever longer windows (power 0.75 and max 0.9999 are that paper's values). Pass
``power=None`` for a constant decay.

Usage from a training loop::

    ema = EMA(policy)
    for batch in loader:
        ...; optimizer.step(); ema.update(policy)
    with ema.average_parameters(policy):   # evaluate with averaged weights, then restore
        evaluate(policy)
    save_file(ema.state_dict(), "ema.safetensors")   # flat tensors, safetensors-ready

Floating-point parameters that require grad are averaged; every other parameter and buffer
(normalisation statistics, frozen modules) is copied as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

STEP_KEY = "step"
SHADOW_PREFIX = "shadow."


class EMA:
    """Shadow copy of a module's weights, updated by :meth:`update` after each optimiser step.

    Args:
        model: the module whose weights are averaged (its current weights initialise the shadow).
        decay: upper bound of the decay (the decay itself when ``power`` is None).
        power: warm-up exponent of the power-decay schedule; None = constant ``decay``.
        inv_gamma: warm-up time scale in steps.
        min_decay: lower bound of the decay.
        update_after_step: optimiser steps before averaging starts (the shadow is copied until then).
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.9999,
        power: float | None = 0.75,
        inv_gamma: float = 1.0,
        min_decay: float = 0.0,
        update_after_step: int = 0,
    ) -> None:
        if not 0.0 <= min_decay <= decay < 1.0:
            raise ValueError(
                f"need 0 <= min_decay <= decay < 1; got min_decay={min_decay}, decay={decay}"
            )
        self.max_decay = decay
        self.power = power
        self.inv_gamma = inv_gamma
        self.min_decay = min_decay
        self.update_after_step = update_after_step
        self.step = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: value.detach().clone() for name, value in self._tensors(model)
        }

    @staticmethod
    def _tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
        yield from model.state_dict(keep_vars=True).items()

    @staticmethod
    def _averaged(value: torch.Tensor) -> bool:
        return isinstance(value, nn.Parameter) and value.requires_grad and value.is_floating_point()

    def current_decay(self) -> float:
        """Decay the next :meth:`update` will use."""
        k = self.step - self.update_after_step  # 0 on the first averaging update
        if k < 0:
            return 0.0
        if self.power is None:
            return self.max_decay
        value = 1.0 - (1.0 + k / self.inv_gamma) ** -self.power
        return min(self.max_decay, max(self.min_decay, value))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average (call after ``optimizer.step()``)."""
        decay = self.current_decay()
        self.step += 1
        for name, value in self._tensors(model):
            shadow = self._shadow(name, value)
            if self._averaged(value):
                shadow.lerp_(value.detach(), 1.0 - decay)
            else:
                shadow.copy_(value.detach())

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's weights with the averaged ones."""
        for name, value in self._tensors(model):
            value.data.copy_(self._shadow(name, value))

    @contextmanager
    def average_parameters(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into ``model``; the originals come back on exit."""
        backup = {name: value.detach().clone() for name, value in self._tensors(model)}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, value in self._tensors(model):
                    value.data.copy_(backup[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat tensors (``step`` + ``shadow.<name>``), ready for safetensors."""
        out = {STEP_KEY: torch.tensor(self.step, dtype=torch.int64)}
        out.update(
            {SHADOW_PREFIX + name: t.detach().cpu().contiguous() for name, t in self.shadow.items()}
        )
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`state_dict`; the tensor names must match this EMA's model exactly."""
        names = {k[len(SHADOW_PREFIX) :] for k in state if k.startswith(SHADOW_PREFIX)}
        missing, unexpected = sorted(set(self.shadow) - names), sorted(names - set(self.shadow))
        if missing or unexpected or STEP_KEY not in state:
            raise KeyError(
                f"EMA state does not fit: missing {missing[:10]}, unexpected {unexpected[:10]}"
                + ("" if STEP_KEY in state else f", no {STEP_KEY!r}")
            )
        self.step = int(state[STEP_KEY])
        for name, shadow in self.shadow.items():
            shadow.copy_(state[SHADOW_PREFIX + name])

    def to(self, device: torch.device | str) -> EMA:
        """Move the shadow weights (e.g. next to the model)."""
        self.shadow = {name: t.to(device) for name, t in self.shadow.items()}
        return self

    def _shadow(self, name: str, value: torch.Tensor) -> torch.Tensor:
        try:
            shadow = self.shadow[name]
        except KeyError:
            raise KeyError(
                f"EMA has no shadow for {name!r}: was it built from this model?"
            ) from None
        if shadow.device != value.device:  # follow the model if it moved (e.g. .to('cuda'))
            shadow = self.shadow[name] = shadow.to(value.device)
        return shadow
