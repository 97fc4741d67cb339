"""LCT: learnable context tokens, everything about them in one place.

Each block and direction (the reading tower's `cross_attn`) holds `n_ctx` tokens in model width and
one learnable scalar logit offset. The tokens go through the same fusion projections as the other
stream's tokens and are prepended to the keys of every TARP partition; the offset is added to their
attention logits (tarp.py applies it). From scratch the offset starts at 0; on top of a pretrained
fusion (Ovi) a very negative `ctx_logit_init` keeps the pretrained output while gradients still
reach the tokens (docs/DESIGN-NOTES.md).

The parameters sit directly on the cross-attention module, under the names below, so their
state-dict keys (`...cross_attn.ctx_tokens`, `...cross_attn.ctx_logit_bias`) are the ones every CCL
checkpoint already has. `PARAMETER_NAMES` is the one list the checkpoint loader (parameters a
pretrained file may lack), `DualStreamModel.param_groups` and the optimiser (no weight decay on the
tokens) use.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn

from .layers import cast_like

TOKENS = "ctx_tokens"
LOGIT_OFFSET = "ctx_logit_bias"
PARAMETER_NAMES = (TOKENS, LOGIT_OFFSET)
TOKEN_STD = 0.02  # initial scale of the tokens


def is_context_parameter(name: str) -> bool:
    """Whether a (dotted) parameter name is one of the context tokens' parameters."""
    return name.rsplit(".", 1)[-1] in PARAMETER_NAMES


def initial_value(name: str, n_ctx: int, dim: int, logit_init: float,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Initial value of a context parameter (`name` may be dotted): tokens ~ N(0, TOKEN_STD²),
    offset = logit_init. Used at construction and for the parameters a pretrained file lacks."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == TOKENS:
        return torch.randn(n_ctx, dim, generator=generator) * TOKEN_STD
    if leaf == LOGIT_OFFSET:
        return torch.full((1,), float(logit_init))
    raise KeyError(f"{name} is not a context-token parameter ({', '.join(PARAMETER_NAMES)})")


def add_parameters(module: nn.Module, n_ctx: int, dim: int, logit_init: float) -> None:
    """Give a cross-attention module its context tokens and offset (nothing when n_ctx is 0)."""
    if n_ctx:
        for name in PARAMETER_NAMES:
            module.register_parameter(name, nn.Parameter(initial_value(name, n_ctx, dim, logit_init)))


def keys_values(module: nn.Module, fusion_kv: Callable, like: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tokens as keys and values ([1, n_ctx, H, D] each, through `fusion_kv`, the other stream's
    projections) and their logit offset, which keeps its own precision (it is added in float32)."""
    k, v = fusion_kv(cast_like(getattr(module, TOKENS), like).unsqueeze(0))
    return k, v, getattr(module, LOGIT_OFFSET).to(like.device)


def add_offset(logits: torch.Tensor, offset: torch.Tensor, n_ctx: int) -> torch.Tensor:
    """Add the offset to the logits of the first n_ctx keys (the context tokens), along the last axis."""
    if not n_ctx:
        return logits
    return torch.cat([logits[..., :n_ctx] + offset, logits[..., n_ctx:]], dim=-1)
