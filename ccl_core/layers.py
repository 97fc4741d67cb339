"""Small building blocks shared by both towers, built from an injectable set of operations.

A model's weight-bearing layers come from one `operations` namespace (Linear, Conv1d, Conv3d,
LayerNorm, RMSNorm), as in ComfyUI's own models (comfy/ldm/wan/model.py): the default, `TorchOps`,
holds ccl_core's plain-torch layers; ComfyUI passes comfy.ops so that its memory manager, LoRA
patches and fp8 handling reach every layer. ccl_core itself never imports comfy.

TorchOps' layers cast their weights to the input's dtype and device at call time, so a model can be
stored in fp8 (or any dtype) and computed in a higher one, one layer at a time, without a second
full-size copy (the same idea as ComfyUI's manual-cast ops). Raw parameters (modulation tables,
context tokens) go through `cast_like` at their use for the same reason.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def cast_like(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """`t` on the device and in the dtype of `like` (no copy when it already is)."""
    if t is None:
        return None
    if t.dtype != like.dtype or t.device != like.device:
        return t.to(device=like.device, dtype=like.dtype)
    return t


class Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, cast_like(self.weight, x), cast_like(self.bias, x))


class Conv1d(nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, cast_like(self.weight, x), cast_like(self.bias, x))


class Conv3d(nn.Conv3d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, cast_like(self.weight, x), cast_like(self.bias, x))


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


class TorchOps:
    """The default `operations`: ccl_core's plain-torch layers (ComfyUI passes comfy.ops instead).

    Layers are built with keyword arguments common to both (`bias=`, `padding=`, `eps=`,
    `elementwise_affine=`), so either namespace builds the same parameter names and shapes.
    """

    Linear = Linear
    Conv1d = Conv1d
    Conv3d = Conv3d
    LayerNorm = LayerNorm
    RMSNorm = RMSNorm


def sinusoidal_embedding(dim: int, position: torch.Tensor) -> torch.Tensor:
    """[cos, sin] embedding of positions (Wan's order), computed in float64: [N] -> [N, dim]."""
    half = dim // 2
    position = position.to(torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, device=position.device, dtype=torch.float64) / half)
    angles = torch.outer(position, freqs)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class ConvMLP(nn.Module):
    """SwiGLU over Conv1d layers: Ovi's audio stem MLP (weights w1, w2, w3, no bias)."""

    def __init__(self, dim: int, hidden: int, kernel_size: int, ops=TorchOps):
        super().__init__()
        pad = kernel_size // 2
        self.w1 = ops.Conv1d(dim, hidden, kernel_size, padding=pad, bias=False)
        self.w2 = ops.Conv1d(hidden, dim, kernel_size, padding=pad, bias=False)
        self.w3 = ops.Conv1d(dim, hidden, kernel_size, padding=pad, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, L]
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class AudioEmbedding(nn.Sequential):
    """Audio latent [B, C, L] -> tokens [B, L, dim]; keys patch_embedding.0 / .2.w* as in Ovi."""

    def __init__(self, in_channels: int, dim: int, hidden: int, kernel_size: int, ops=TorchOps):
        super().__init__(
            ops.Conv1d(in_channels, dim, kernel_size, padding=kernel_size // 2),
            nn.SiLU(),
            ConvMLP(dim, hidden, kernel_size, ops),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).transpose(1, 2)


def video_patch_embedding(in_channels: int, dim: int, patch, ops=TorchOps) -> nn.Module:
    """The video stem: one Conv3d with kernel = stride = patch (key `patch_embedding.weight`)."""
    return ops.Conv3d(in_channels, dim, kernel_size=tuple(patch), stride=tuple(patch))


def video_tokens(conv_out: torch.Tensor):
    """Conv3d output [B, dim, T', H', W'] -> tokens [B, T'H'W', dim] and the grid (T', H', W')."""
    return conv_out.flatten(2).transpose(1, 2), tuple(conv_out.shape[2:])


class Head(nn.Module):
    """Output head: non-affine LayerNorm, two-way modulation (shift, scale), linear."""

    def __init__(self, dim: int, out_features: int, eps: float, ops=TorchOps):
        super().__init__()
        self.norm = ops.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.head = ops.Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / math.sqrt(dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        # e: [B, 1, dim] time embedding (before the six-way projection)
        shift, scale = (cast_like(self.modulation, e).unsqueeze(0) + e.unsqueeze(2)).unbind(2)
        return self.head(self.norm(x) * (1 + scale) + shift)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, ffn_dim: int, ops=TorchOps):
        super().__init__(ops.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), ops.Linear(ffn_dim, dim))
