"""The straight (rectified-flow) probability path shared by the flow and meanflow policies.

Convention (pi0 / openpi and the MeanFlow paper): time runs from data at ``t = 0`` to noise at
``t = 1``::

    z_t = (1 - t) * action + t * noise        velocity  v = dz_t/dt = noise - action

and sampling integrates from ``t = 1`` (pure noise) down to ``t = 0``. With this convention the
MeanFlow objective at ``r = t`` is exactly the flow policy's objective.
"""

from __future__ import annotations

import torch

TIME_SAMPLINGS = ("beta", "uniform", "logit_normal")
#: flow/MeanFlow times in [0, 1] are multiplied by this before the sinusoidal embedding. 10 keeps
#: the time features smooth: the MeanFlow target contains (t - r) * du/dt, and with the DiT-style
#: 100-1000 the t-derivative of fresh networks is large and training diverged on our overfit test
#: (flow matching alone was insensitive: equal results for 10 and 100).
TIME_EMBED_SCALE = 10.0


def sample_times(
    n: int,
    device: torch.device,
    kind: str,
    beta_alpha: float = 1.5,
    mean: float = 0.0,
    std: float = 1.0,
    t_min: float = 0.0,
) -> torch.Tensor:
    """[n] training times in [t_min, 1] from torch's global RNG.

    ``beta``: pi0's ``Beta(beta_alpha, 1)`` (density ~ t^0.5 for 1.5), which favours the noisy end:
    for actions the observation pins down most of the answer, so the hard part is the coarse,
    high-noise structure. ``logit_normal``: ``sigmoid(N(mean, std))`` (SD3; MeanFlow uses
    mean -0.4, std 1). ``uniform``: U(0, 1).
    """
    if kind == "beta":
        t = torch.rand(n, device=device) ** (1.0 / beta_alpha)  # inverse CDF of Beta(a, 1): t^a
    elif kind == "logit_normal":
        t = torch.sigmoid(torch.randn(n, device=device) * std + mean)
    elif kind == "uniform":
        t = torch.rand(n, device=device)
    else:
        raise ValueError(f"time sampling {kind!r} is not one of {TIME_SAMPLINGS}")
    return t_min + (1.0 - t_min) * t


def interpolate(
    actions: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """actions, noise [B, T, A], t [B] -> (z_t [B, T, A], target velocity v [B, T, A])."""
    tt = t[:, None, None]
    return (1.0 - tt) * actions + tt * noise, noise - actions
