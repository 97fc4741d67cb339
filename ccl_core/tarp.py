"""Partitioned cross-modal attention (the partitioning half of TARP), planned once per forward.

The clip is cut into windows of `width` latent video frames on the shared time axis. A query sees
the keys of its own window plus the learnable context tokens, which every query sees. The fast path
gathers each window's queries and keys into a padded block and runs one batched attention over
(batch x windows), so the cost grows linearly with clip length. The dense path builds the full
[queries x keys] mask and exists as the reference the fast path is tested against.

Both paths take the same per-sample route: a sample whose route is ctx-only sees the context tokens
alone. A query left with no visible key at all (ctx-only route and no context tokens, or a window
with no keys) gets a zero output, i.e. no cross-modal information.

`plan_cross_modal` decides, once per forward and direction, what a stream's cross-attention reads
(`CrossModalPlan`: nothing, the context tokens only, or the other stream too, with the partition
built once); each block then turns the plan and the other stream's current tokens into a
`CrossModalInput`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Protocol

import torch
import torch.nn.functional as F

from .context import add_offset
from .rope import Rotary


def window_ids(positions: torch.Tensor, width: float) -> torch.Tensor:
    """Window index of each token from its time position (in latent video frames)."""
    return torch.floor(positions.double() / width + 1e-9).long()


def _gather_plan(ids: torch.Tensor, n_windows: int):
    """Group token indices by window: idx [P, M] (padded with 0) and valid [P, M]."""
    counts = torch.bincount(ids, minlength=n_windows)
    m = max(int(counts.max()), 1)
    order = torch.argsort(ids, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(ids.numel(), device=ids.device) - starts[ids[order]]
    idx = torch.zeros(n_windows, m, dtype=torch.long, device=ids.device)
    valid = torch.zeros(n_windows, m, dtype=torch.bool, device=ids.device)
    idx[ids[order], slot] = order
    valid[ids[order], slot] = True
    return idx, valid


@dataclass
class Partition:
    """Gather plan for one direction (queries of one stream, keys of the other)."""

    q_idx: torch.Tensor  # [P, Mq]
    q_inverse: torch.Tensor  # [Lq]: where each query sits in the flattened [P * Mq]
    k_idx: torch.Tensor  # [P, Mk]
    k_valid: torch.Tensor  # [P, Mk]

    @classmethod
    def build(cls, q_pos: torch.Tensor, k_pos: torch.Tensor, width: float) -> "Partition":
        q_ids, k_ids = window_ids(q_pos, width), window_ids(k_pos, width)
        n = int(max(q_ids.max(), k_ids.max())) + 1
        q_idx, q_valid = _gather_plan(q_ids, n)
        k_idx, k_valid = _gather_plan(k_ids, n)
        flat = torch.nonzero(q_valid.flatten()).squeeze(1)
        q_inverse = torch.empty_like(flat)
        q_inverse[q_idx.flatten()[flat]] = flat
        return cls(q_idx, q_inverse, k_idx, k_valid)


@dataclass(frozen=True)
class CrossModalInput:
    """What one stream's cross-attention reads of the other stream in one block."""

    other: Optional[torch.Tensor]  # [B, Lo, dim] other stream, rows aligned; None: context tokens only
    own_rope: Rotary
    other_rope: Rotary
    reads_other: Optional[torch.Tensor]  # [B] bool; False = ctx-only route; None = all full
    partition: Optional[Partition] = None  # TARP fast path


CrossModalMode = Literal["none", "ctx", "full"]


@dataclass(frozen=True)
class CrossModalPlan:
    """What one stream's cross-attention reads of the other, fixed for a whole forward pass.

    mode "none": no cross-modal attention (no context tokens, and no row reads the other stream);
    "ctx": the context tokens only (the other stream is absent, or no row reads it); "full": the
    context tokens and the other stream, in TARP partitions, with `reads` turning some rows ctx-only.
    """

    mode: CrossModalMode
    reads: Optional[torch.Tensor] = None  # [b] bool: rows that read the other stream; None: all
    gather: Optional[torch.Tensor] = None  # [b]: each row's index in the other stream's rows; None: same rows
    other_rope: Optional[Rotary] = None
    partition: Optional[Partition] = None  # None: no windows (tarp_window=None)

    def input(self, own_rope: Rotary, other: Optional[torch.Tensor]) -> Optional[CrossModalInput]:
        """This block's input, given the other stream's current tokens (its sub-batch)."""
        if self.mode == "none":
            return None
        if self.mode == "ctx":
            return CrossModalInput(None, own_rope, own_rope, None)
        other = other if self.gather is None else other[self.gather]
        return CrossModalInput(other, own_rope, self.other_rope, self.reads, self.partition)


class StreamTokens(Protocol):
    """What planning needs of a stream (model.Stream): its rows of the batch, positions and RoPE."""

    rows: Optional[torch.Tensor]  # batch rows where the stream exists; None: every row
    pos: torch.Tensor  # [L] time position of each token, in latent video frames
    rope: Rotary

    def select(self, value: torch.Tensor) -> torch.Tensor: ...


def plan_cross_modal(reads: torch.Tensor, own: StreamTokens, other: Optional[StreamTokens], n_ctx: int,
                     window: Optional[float]) -> CrossModalPlan:
    """The plan for `own` reading `other` (None: absent), given which batch rows read it (reads [B])."""
    batch, device = reads.shape[0], reads.device
    reads = own.select(reads)
    if other is None or not bool(reads.any()):
        return CrossModalPlan("none" if n_ctx == 0 else "ctx")
    gather = None
    if own.rows is not None or other.rows is not None:
        # batch rows -> rows of the other stream's (sub)batch; unmatched rows read row 0 and are
        # masked out by their route
        where = torch.zeros(batch, dtype=torch.long, device=device)
        other_rows = torch.arange(batch, device=device) if other.rows is None else other.rows
        where[other_rows] = torch.arange(other_rows.numel(), device=device)
        gather = own.select(where)
    partition = None if window is None else Partition.build(own.pos, other.pos, window)
    return CrossModalPlan("full", None if bool(reads.all()) else reads, gather, other.rope, partition)


def _attend(q, k, v, key_mask: Optional[torch.Tensor], ctx_bias: Optional[torch.Tensor], n_ctx: int):
    """Reference SDPA with a boolean mask [N, Lq or 1, K] and a logit offset on the first n_ctx keys.

    q [N, H, Lq, D], k/v [N, H, K, D]. Rows without any visible key return zeros (not NaN).
    """
    if key_mask is None and ctx_bias is None:
        return F.scaled_dot_product_attention(q, k, v)
    n, _, lq, _ = q.shape
    kk = k.shape[2]
    if key_mask is None:
        key_mask = torch.ones(n, 1, kk, dtype=torch.bool, device=q.device)
    has_key = key_mask.any(-1, keepdim=True)  # [N, Lq|1, 1]
    safe = key_mask.clone()
    safe[..., :1] |= ~has_key  # a finite softmax for rows that are zeroed below
    bias = torch.zeros(safe.shape, dtype=q.dtype, device=q.device).masked_fill(~safe, float("-inf"))
    if ctx_bias is not None:
        bias = add_offset(bias, ctx_bias.to(q.dtype), n_ctx)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(1))
    return out * has_key.unsqueeze(1).to(out.dtype)


_REMOVED = -30000.0  # key-channel value that removes a key (logit about -2650 at head_dim 128)
_EXTRA = 8  # extra channels keep the head dim a multiple of 8, as the fused kernels want


def _attend_keys(q, k, v, key_mask: Optional[torch.Tensor], ctx_bias: Optional[torch.Tensor], n_ctx: int,
                 attention=F.scaled_dot_product_attention):
    """SDPA with per-key logit offsets (removed keys, the context tokens' offset) and no mask.

    The offsets ride in one extra key channel that meets a constant 1 in the queries, so no mask
    is passed and the fused kernels (flash) stay usable: a [N, H, Lq, K] mask is never built.
    q [N, H, Lq, D], k/v [N, H, K, D], key_mask [N, K] or None. Rows with no visible key are zero.
    `attention(q, k, v, scale=None)` is the attention function (torch SDPA's signature).
    """
    if key_mask is None and (ctx_bias is None or not n_ctx):
        return attention(q, k, v)
    n, h, lq, d = q.shape
    kk = k.shape[2]
    scale = d ** -0.5
    chan = torch.zeros(n, kk, dtype=torch.float32, device=q.device)
    if key_mask is not None:
        chan = chan.masked_fill(~key_mask, _REMOVED)
    if ctx_bias is not None:  # in key-channel units: the channel meets 1 and is then scaled
        chan = add_offset(chan, ctx_bias.float() / scale, n_ctx)
    one = torch.zeros(_EXTRA, dtype=q.dtype, device=q.device)
    one[0] = 1
    q = torch.cat([q, one.expand(n, h, lq, _EXTRA)], dim=-1)
    k_extra = F.pad(chan.to(k.dtype)[:, None, :, None].expand(n, h, kk, 1), (0, _EXTRA - 1))
    k = torch.cat([k, k_extra], dim=-1)
    v = F.pad(v, (0, _EXTRA))
    out = attention(q, k, v, scale=scale)[..., :d]
    if key_mask is not None:
        out = out * key_mask.any(-1).view(n, 1, 1, 1).to(out.dtype)
    return out


def cross_modal_attention(q, k, v, k_ctx, v_ctx, reads_other: Optional[torch.Tensor],
                          ctx_bias: Optional[torch.Tensor] = None,
                          partition: Optional[Partition] = None,
                          attention=F.scaled_dot_product_attention) -> torch.Tensor:
    """Attention of q over [ctx ; other] with windows and routes (fast path).

    q [B, Lq, H, D]; k, v [B, Lk, H, D] (other stream, RoPE applied); k_ctx, v_ctx [C, H, D] or
    None; reads_other [B] bool (False: ctx-only route) or None (all full). Returns [B, Lq, H, D].
    `attention` is the injectable attention function (see attention.py).
    """
    b, lq, h, d = q.shape
    n_ctx = 0 if k_ctx is None else k_ctx.shape[0]
    all_full = reads_other is None or bool(reads_other.all())
    if partition is None:
        if n_ctx:
            k = torch.cat([k_ctx.unsqueeze(0).expand(b, -1, -1, -1).to(k.dtype), k], dim=1)
            v = torch.cat([v_ctx.unsqueeze(0).expand(b, -1, -1, -1).to(v.dtype), v], dim=1)
        mask = None
        if not all_full:
            if not n_ctx:  # ctx-only rows see nothing: attend freely, then zero those rows
                out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
                return out.transpose(1, 2) * reads_other.view(b, 1, 1, 1).to(out.dtype)
            mask = torch.ones(b, k.shape[1], dtype=torch.bool, device=q.device)
            mask[:, n_ctx:] = reads_other.view(b, 1)
        out = _attend_keys(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, ctx_bias, n_ctx, attention)
        return out.transpose(1, 2)

    p, mq = partition.q_idx.shape
    mk = partition.k_idx.shape[1]
    qp = q[:, partition.q_idx.flatten()].view(b * p, mq, h, d)
    kp = k[:, partition.k_idx.flatten()].view(b, p, mk, h, d)
    vp = v[:, partition.k_idx.flatten()].view(b, p, mk, h, d)
    key_mask = partition.k_valid.unsqueeze(0).expand(b, p, mk)
    if not all_full:
        key_mask = key_mask & reads_other.view(b, 1, 1)
    if n_ctx:
        kp = torch.cat([k_ctx.to(k.dtype).expand(b, p, n_ctx, h, d), kp], dim=2)
        vp = torch.cat([v_ctx.to(v.dtype).expand(b, p, n_ctx, h, d), vp], dim=2)
        key_mask = torch.cat([key_mask.new_ones(b, p, n_ctx), key_mask], dim=2)
    kp, vp = kp.flatten(0, 1), vp.flatten(0, 1)
    key_mask = key_mask.reshape(b * p, -1)
    out = _attend_keys(qp.transpose(1, 2), kp.transpose(1, 2), vp.transpose(1, 2), key_mask, ctx_bias, n_ctx,
                       attention)
    out = out.transpose(1, 2).reshape(b, p * mq, h, d)
    return out[:, partition.q_inverse]


def dense_cross_modal_attention(q, k, v, k_ctx, v_ctx, reads_other, ctx_bias=None,
                                q_pos=None, k_pos=None, width=None) -> torch.Tensor:
    """Reference path: the same attention with one dense [Lq x (C + Lk)] mask."""
    b, lq, h, d = q.shape
    lk = k.shape[1]
    n_ctx = 0 if k_ctx is None else k_ctx.shape[0]
    if n_ctx:
        k = torch.cat([k_ctx.unsqueeze(0).expand(b, -1, -1, -1).to(k.dtype), k], dim=1)
        v = torch.cat([v_ctx.unsqueeze(0).expand(b, -1, -1, -1).to(v.dtype), v], dim=1)
    other = torch.ones(b, lq, lk, dtype=torch.bool, device=q.device)
    if width is not None:
        other = other & (window_ids(q_pos, width)[:, None] == window_ids(k_pos, width)[None, :])
    if reads_other is not None:
        other = other & reads_other.view(b, 1, 1)
    mask = torch.cat([other.new_ones(b, lq, n_ctx), other], dim=2)
    out = _attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, ctx_bias, n_ctx)
    return out.transpose(1, 2)
