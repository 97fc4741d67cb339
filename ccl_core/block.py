"""One Wan block: AdaLN-modulated self-attention, cross-attention (text + cross-modal), FFN.

The dual-stream model does not call a block as one function: it interleaves the two towers' steps
(the block order in docs/DESIGN-NOTES.md), so the block exposes its two halves.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from .attention import DEFAULT_ATTENTION, AttentionFn, CrossAttention, SelfAttention
from .config import ModelConfig
from .layers import FeedForward, TorchOps, cast_like
from .rope import Rotary
from .self_windows import TimeWindows
from .tarp import CrossModalInput


class Modulation(nn.Module):
    """A block's learned [1, 6, dim] table added to the six-way timestep projection."""

    def __init__(self, dim: int, num: int = 6):
        super().__init__()
        self.modulation = nn.Parameter(torch.randn(1, num, dim) / math.sqrt(dim))

    def forward(self, e0: torch.Tensor):
        # e0 [B, 1, 6, dim] -> six tensors [B, 1, dim]: shift/scale/gate of attention, then of FFN
        return (cast_like(self.modulation, e0) + e0).unbind(2)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, ops=TorchOps, attention: AttentionFn = DEFAULT_ATTENTION):
        super().__init__()
        dim = cfg.dim
        self.norm1 = ops.LayerNorm(dim, eps=cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(dim, cfg.num_heads, cfg.qk_norm, cfg.eps, ops, attention)
        self.norm3 = ops.LayerNorm(dim, eps=cfg.eps, elementwise_affine=True) if cfg.cross_attn_norm else nn.Identity()
        self.cross_attn = CrossAttention(dim, cfg.num_heads, cfg.qk_norm, cfg.eps,
                                         cfg.fusion, cfg.n_ctx, cfg.ctx_logit_init, ops, attention)
        self.norm2 = ops.LayerNorm(dim, eps=cfg.eps, elementwise_affine=False)
        self.ffn = FeedForward(dim, cfg.ffn_dim, ops)
        self.modulation = Modulation(dim)

    def self_attention(self, x: torch.Tensor, mods, rope: Rotary, windows: Optional[TimeWindows] = None) -> torch.Tensor:
        shift, scale, gate = mods[0], mods[1], mods[2]
        return x + self.self_attn(self.norm1(x) * (1 + scale) + shift, rope, windows) * gate

    def cross_attention_ffn(self, x: torch.Tensor, mods, text: torch.Tensor, cm: CrossModalInput | None) -> torch.Tensor:
        x = x + self.cross_attn(self.norm3(x), text, cm)
        return x + self.ffn(self.norm2(x) * (1 + mods[4]) + mods[3]) * mods[5]
