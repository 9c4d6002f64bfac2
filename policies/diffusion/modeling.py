"""Diffusion Policy (Chi et al., RSS 2023): DDPM training, DDIM/DDPM sampling of action chunks.

Reads top to bottom: config and schedulers, networks (shared encoder + FiLM U-Net, built by
:class:`~policies.common.base.ChunkGenerativePolicy`), loss, sampling.

Determinism: DDIM with eta=0 is a deterministic map from the initial noise to the chunk. DDPM
draws fresh noise at every step; here that noise comes from a ``torch.Generator`` seeded with a
hash of the initial noise, so ``predict_chunk(batch, noise)`` is a pure function of its inputs for
both samplers (and different initial noise gives independent per-step noise).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import torch

from policies.common.base import ChunkGenerativePolicy, masked_mse
from policies.diffusion.configuration import DiffusionConfig
from robot_learning.features import ACTION, FeatureSpec
from robot_learning.policy import register_policy


def make_scheduler(config: DiffusionConfig, sampler: str):
    """A diffusers DDPM or DDIM scheduler with the config's training noise schedule."""
    # lazy: importing diffusers costs seconds and only this family needs it
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    common = dict(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
        clip_sample=config.clip_sample,
        clip_sample_range=config.clip_sample_range,
    )
    if sampler == "ddpm":
        # fixed_small: the posterior variance of DDPM (Ho et al.), as in Diffusion Policy
        return DDPMScheduler(variance_type="fixed_small", **common)
    return DDIMScheduler(set_alpha_to_one=True, steps_offset=0, **common)


def ddim_schedule(config: DiffusionConfig) -> list[tuple[int, float, float]]:
    """(timestep, alpha_bar_t, alpha_bar_prev) per DDIM step, as diffusers' DDIMScheduler.step uses them.

    Computed eagerly (plain floats), so the exported graph holds constants rather than
    scheduler code.
    """
    scheduler = make_scheduler(config, "ddim")
    scheduler.set_timesteps(config.num_inference_steps)
    alphas = scheduler.alphas_cumprod.double().tolist()
    stride = config.num_train_timesteps // config.num_inference_steps
    final = float(scheduler.final_alpha_cumprod)
    return [
        (t, alphas[t], alphas[t - stride] if t - stride >= 0 else final)
        for t in scheduler.timesteps.tolist()
    ]


def generator_from_noise(noise: torch.Tensor) -> torch.Generator:
    """A generator whose seed is a hash of ``noise`` (makes DDPM sampling a function of the noise)."""
    digest = hashlib.blake2b(noise.detach().cpu().numpy().tobytes(), digest_size=8).digest()
    generator = torch.Generator(device=noise.device)
    generator.manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
    return generator


@register_policy("diffusion")
class DiffusionPolicy(ChunkGenerativePolicy):
    """Denoises an action chunk from Gaussian noise, conditioned on the observation window."""

    config_class = DiffusionConfig
    num_time_inputs = 1
    time_scale = 1.0  # integer DDPM steps 0..num_train_timesteps-1 go in unscaled

    def __init__(self, config: DiffusionConfig, features: FeatureSpec, stats: dict | None) -> None:
        super().__init__(config, features, stats)
        self.config: DiffusionConfig = config
        # training always uses the DDPM forward process; the sampler only changes inference
        self.noise_scheduler = make_scheduler(config, "ddpm")
        self.inference_scheduler = make_scheduler(config, config.sampler)
        self._ddim_schedule = ddim_schedule(config)

    # ------------------------------------------------------------------ loss
    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Epsilon (or sample) regression at a uniformly drawn diffusion step, padded steps masked."""
        cond = self.encode_observations(batch)
        actions, valid = self.normalized_actions(batch)  # [B, H, A], [B, H]
        noise = torch.randn_like(actions)
        steps = torch.randint(
            0, self.config.num_train_timesteps, (actions.shape[0],), device=actions.device
        )
        noisy = self.noise_scheduler.add_noise(actions, noise, steps)
        pred = self.unet(noisy, steps[:, None].float(), cond)
        target = noise if self.config.prediction_type == "epsilon" else actions
        loss = masked_mse(pred, target, valid)
        return loss, {"loss": loss.item(), "mse": loss.item()}

    # ------------------------------------------------------------------ sampler settings
    def inference_settings(self) -> dict:
        """``{"name": "ddim" | "ddpm", "steps": k}``."""
        return {"name": self.config.sampler, "steps": int(self.config.num_inference_steps)}

    def set_inference(self, sampler: str | None = None, steps: int | None = None) -> None:
        """Switch between DDIM and DDPM and/or change the step count (validated by the config)."""
        changes = {
            k: v for k, v in (("sampler", sampler), ("num_inference_steps", steps)) if v is not None
        }
        if not changes:
            return
        self.config = dataclasses.replace(self.config, **changes)
        self.inference_scheduler = make_scheduler(self.config, self.config.sampler)
        self._ddim_schedule = ddim_schedule(self.config)

    # ------------------------------------------------------------------ sampling
    def sample(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """cond [B, C], noise [B, horizon, A] -> normalised chunk [B, horizon, A]."""
        scheduler = self.inference_scheduler
        scheduler.set_timesteps(self.config.num_inference_steps, device=noise.device)
        generator = generator_from_noise(noise) if self.config.sampler == "ddpm" else None
        x = noise
        for step in scheduler.timesteps:
            times = step.to(x.device, torch.float32).expand(x.shape[0], 1)
            model_out = self.unet(x, times, cond)
            # DDIM ignores the generator (eta=0); DDPM draws its per-step noise from it
            x = scheduler.step(model_out, step, x, generator=generator).prev_sample
        return x

    # ------------------------------------------------------------------ export
    def export_forward(self, batch: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        """DDIM (eta=0) as plain tensor ops with the scheduler's coefficients baked in.

        Mirrors ``diffusers.DDIMScheduler.step`` (``use_clipped_model_output=False``): predict the
        clean chunk, clip it, and step to the previous timestep along the predicted noise. DDPM
        draws fresh noise per step and is not exported; export with ``sampler=ddim``.
        """
        cfg = self.config
        if cfg.sampler != "ddim":
            raise ValueError(
                f"diffusion exports only the DDIM sampler (config has sampler={cfg.sampler!r}); export with sampler=ddim"
            )
        cond = self.encode_observations(batch)
        x = self.initial_noise(noise, cond.shape[0], cond.device)
        for step, a_t, a_prev in self._ddim_schedule:
            out = self.unet(x, torch.full((x.shape[0], 1), float(step), device=x.device), cond)
            if cfg.prediction_type == "epsilon":
                eps, x0 = out, (x - math.sqrt(1.0 - a_t) * out) / math.sqrt(a_t)
            else:
                x0, eps = out, (x - math.sqrt(a_t) * out) / math.sqrt(1.0 - a_t)
            if cfg.clip_sample:
                x0 = x0.clamp(-cfg.clip_sample_range, cfg.clip_sample_range)
            x = math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps
        return self.normalizer.unnormalize(ACTION, x)
