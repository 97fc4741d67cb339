"""Noise levels for training: where on the flow path each sample is trained.

Logit-normal (SD3, Esser et al. 2024) puts more samples at mid noise, where the velocity is hardest
to predict; uniform is the plain rectified-flow choice. A shift s > 1 moves mass to high noise in
the same way the sampler's schedule does (sampling.shift_sigmas), so training can match it.
"""

from __future__ import annotations

from typing import Optional

import torch

from ccl_core.sampling import shift_sigmas

from .config import TrainConfig


def sample_timesteps(batch: int, cfg: TrainConfig, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One noise level t in [0, 1] per sample (float32, CPU)."""
    if cfg.timestep_dist == "uniform":
        t = torch.rand(batch, generator=generator)
    else:
        t = torch.sigmoid(cfg.logit_mean + cfg.logit_std * torch.randn(batch, generator=generator))
    return shift_sigmas(t, cfg.timestep_shift) if cfg.timestep_shift != 1.0 else t
