"""The two attentions of a block: self-attention, and text + cross-modal context attention (CCA).

Parameter names follow Wan / Ovi (`q`, `k`, `v`, `o`, `norm_q`, `norm_k`, and inside `cross_attn`
the fusion parts `k_fusion`, `v_fusion`, `pre_attn_norm_fusion`, `norm_k_fusion`), so Ovi
checkpoints load as they are. CCL adds the context tokens and their logit offset (LCT, context.py);
the gated baseline adds `fusion_gate`.

Every attention goes through one injectable function, `attention(q, k, v, scale=None)` over
[B, H, L, D] tensors (the signature of torch's scaled_dot_product_attention, the default), so that a
host such as ComfyUI can route it to its own kernels (sage, flash, pytorch) without ccl_core
knowing about them.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import context
from .layers import TorchOps, cast_like
from .rope import Rotary
from .self_windows import TimeWindows
from .tarp import CrossModalInput, cross_modal_attention


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.unflatten(-1, (n, -1))  # [B, L, dim] -> [B, L, H, D]


AttentionFn = Callable[..., torch.Tensor]  # (q, k, v, scale=None) over [B, H, L, D] -> [B, H, L, D]
DEFAULT_ATTENTION: AttentionFn = F.scaled_dot_product_attention
FUSION_GATE = "fusion_gate"  # the gated baseline's parameter (a pretrained pair lacks it)


def sdpa(q, k, v, attention: AttentionFn = DEFAULT_ATTENTION) -> torch.Tensor:
    """Attention over [B, L, H, D] tensors (the layout the projections produce)."""
    return attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


class _Attention(nn.Module):
    """Wan's q, k, v, o projections and optional q / k RMS norms, and the attention function."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool, eps: float, ops=TorchOps,
                 attention: AttentionFn = DEFAULT_ATTENTION):
        super().__init__()
        self.num_heads = num_heads
        self.attention = attention
        self.q, self.k, self.v, self.o = (ops.Linear(dim, dim) for _ in range(4))
        self.norm_q = ops.RMSNorm(dim, eps=eps) if qk_norm else nn.Identity()
        self.norm_k = ops.RMSNorm(dim, eps=eps) if qk_norm else nn.Identity()


class SelfAttention(_Attention):
    def forward(self, x: torch.Tensor, rope: Rotary, windows: Optional[TimeWindows] = None) -> torch.Tensor:
        """Over the whole clip, or within time windows (self_windows.py) where a clip is longer than
        the model's self_attn_window."""
        n = self.num_heads
        q = rope.apply(_heads(self.norm_q(self.q(x)), n))
        k = rope.apply(_heads(self.norm_k(self.k(x)), n))
        v = _heads(self.v(x), n)
        if windows is None:
            return self.o(sdpa(q, k, v, self.attention).flatten(2))
        out = torch.cat([sdpa(q[:, a:b], k[:, c:d], v[:, c:d], self.attention) for a, b, c, d in windows.ranges], dim=1)
        return self.o(out.flatten(2))


class CrossAttention(_Attention):
    """Text cross-attention plus cross-modal context attention, summed before the output projection."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool, eps: float,
                 fusion: str = "ccl", n_ctx: int = 0, ctx_logit_init: float = 0.0, ops=TorchOps,
                 attention: AttentionFn = DEFAULT_ATTENTION):
        super().__init__(dim, num_heads, qk_norm, eps, ops, attention)
        # Cross-modal fusion (Ovi's names).
        self.k_fusion = ops.Linear(dim, dim)
        self.v_fusion = ops.Linear(dim, dim)
        self.pre_attn_norm_fusion = ops.LayerNorm(dim, eps=eps, elementwise_affine=True)
        self.norm_k_fusion = ops.RMSNorm(dim, eps=1e-6) if qk_norm else nn.Identity()
        # CCL: learnable context tokens with a learnable logit offset (context.py).
        self.n_ctx = n_ctx
        context.add_parameters(self, n_ctx, dim, ctx_logit_init)
        # Baseline: a zero-initialised scalar gate on the cross-modal output.
        if fusion == "gated":
            self.register_parameter(FUSION_GATE, nn.Parameter(torch.zeros(1)))
        self.gated = fusion == "gated"

    def fusion_kv(self, tokens: torch.Tensor):
        t = self.pre_attn_norm_fusion(tokens)
        return _heads(self.norm_k_fusion(self.k_fusion(t)), self.num_heads), _heads(self.v_fusion(t), self.num_heads)

    def cross_modal(self, q: torch.Tensor, cm: CrossModalInput) -> torch.Tensor:
        q = cm.own_rope.apply(q)
        k_ctx = v_ctx = bias = None
        if self.n_ctx:
            k_ctx, v_ctx, bias = context.keys_values(self, self.fusion_kv, q)
            if cm.other is None:  # every sample reads the context tokens only: skip the other stream
                return sdpa(q, k_ctx.expand(q.shape[0], -1, -1, -1), v_ctx.expand(q.shape[0], -1, -1, -1),
                            self.attention)
            k_ctx, v_ctx = k_ctx[0], v_ctx[0]
        k, v = self.fusion_kv(cm.other)
        k = cm.other_rope.apply(k)
        return cross_modal_attention(q, k, v, k_ctx, v_ctx, cm.reads_other, bias, cm.partition, self.attention)

    def forward(self, x: torch.Tensor, text: torch.Tensor, cm: Optional[CrossModalInput]) -> torch.Tensor:
        n = self.num_heads
        q = _heads(self.norm_q(self.q(x)), n)
        out = sdpa(q, _heads(self.norm_k(self.k(text)), n), _heads(self.v(text), n), self.attention)
        if cm is not None and (cm.other is not None or self.n_ctx):
            y = self.cross_modal(q, cm)
            out = out + (y * cast_like(self.fusion_gate, y) if self.gated else y)
        return self.o(out.flatten(2))
