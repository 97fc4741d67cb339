"""Small building blocks shared by both towers.

Every weight-bearing layer casts its weights to the input's dtype at call time, so a model can be
stored in fp8 (or any dtype) and computed in a higher one, one layer at a time, without a second
full-size copy (the same idea as ComfyUI's manual-cast ops).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _cast(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    if t is None:
        return None
    if t.dtype != like.dtype or t.device != like.device:
        return t.to(device=like.device, dtype=like.dtype)
    return t


class Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, _cast(self.weight, x), _cast(self.bias, x))


class Conv1d(nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))


class Conv3d(nn.Conv3d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))


class RMSNorm(nn.Module):
    """RMS norm over the last dim, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (affine optional, as Wan's norm1/norm2/norm3)."""

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = False):
        super().__init__(dim, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


def sinusoidal_embedding(dim: int, position: torch.Tensor) -> torch.Tensor:
    """[cos, sin] embedding of positions (Wan's order), computed in float64: [N] -> [N, dim]."""
    half = dim // 2
    position = position.to(torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, device=position.device, dtype=torch.float64) / half)
    angles = torch.outer(position, freqs)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class ConvMLP(nn.Module):
    """SwiGLU over Conv1d layers: Ovi's audio stem MLP (weights w1, w2, w3, no bias)."""

    def __init__(self, dim: int, hidden: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.w1 = Conv1d(dim, hidden, kernel_size, padding=pad, bias=False)
        self.w2 = Conv1d(hidden, dim, kernel_size, padding=pad, bias=False)
        self.w3 = Conv1d(dim, hidden, kernel_size, padding=pad, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, L]
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class AudioEmbedding(nn.Sequential):
    """Audio latent [B, C, L] -> tokens [B, L, dim]; keys patch_embedding.0 / .2.w* as in Ovi."""

    def __init__(self, in_channels: int, dim: int, hidden: int, kernel_size: int):
        super().__init__(
            Conv1d(in_channels, dim, kernel_size, padding=kernel_size // 2),
            nn.SiLU(),
            ConvMLP(dim, hidden, kernel_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).transpose(1, 2)


class VideoEmbedding(Conv3d):
    """Video latent [B, C, T, H, W] -> tokens [B, T'H'W', dim] and the patch grid (T', H', W')."""

    def __init__(self, in_channels: int, dim: int, patch):
        super().__init__(in_channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor):
        y = super().forward(x)
        grid = tuple(y.shape[2:])
        return y.flatten(2).transpose(1, 2), grid


class Head(nn.Module):
    """Output head: non-affine LayerNorm, two-way modulation (shift, scale), linear."""

    def __init__(self, dim: int, out_features: int, eps: float):
        super().__init__()
        self.norm = LayerNorm(dim, eps)
        self.head = Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / math.sqrt(dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        # e: [B, 1, dim] time embedding (before the six-way projection)
        shift, scale = (self.modulation.to(e.dtype).unsqueeze(0) + e.unsqueeze(2)).unbind(2)
        return self.head(self.norm(x) * (1 + scale) + shift)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, ffn_dim: int):
        super().__init__(Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), Linear(ffn_dim, dim))
