"""Self-attention windowed in time, for clips longer than the ones a model was trained on.

A model trained on clips of W latent video frames has only ever self-attended over W frames. On a
longer clip, full self-attention spreads every query over more keys, at relative distances it never
saw: at 8 s the embedded model's median sync offset is 2.4x its 2 s figure and its motion drops
(docs/TOYAV.md, "2, 4 and 8 s in one run"). With `ModelConfig.self_attn_window = W`, the queries of
each latent frame read the keys of the W latent frames around it (the window shifted inward at the
clip's ends), so every query sees as much time and as many keys as in training. A clip of at most W
frames attends in full, as before.

Token times never decrease along a stream (video tokens frame by frame, audio latents in order), so
a window is one contiguous range of keys: one attention call per distinct window through the host's
attention function, no mask. Cross-modal attention is local already (TARP's partitions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

_EPS = 1e-6


@dataclass(frozen=True)
class TimeWindows:
    """Query ranges and the key range each reads: (q_start, q_end, k_start, k_end) token indices."""

    ranges: Tuple[Tuple[int, int, int, int], ...]

    @classmethod
    def plan(cls, positions: torch.Tensor, width: Optional[float], step: float) -> Optional["TimeWindows"]:
        """Windows of `width` latent frames over tokens at `positions` [L] (latent frames, nondecreasing;
        each token spans `step`), or None where the clip fits in one window (full attention)."""
        if not width or positions.numel() == 0:
            return None
        pos = positions.double().cpu()
        start, end = float(pos[0]), float(pos[-1]) + step
        if end - start <= width + _EPS:
            return None
        # each token's window starts half a window before it, on whole latent frames, inside the clip
        lo = torch.floor(pos - width / 2 + _EPS).clamp(min=start, max=end - width)
        values, counts = torch.unique_consecutive(lo, return_counts=True)
        q_end = torch.cumsum(counts, 0)
        k_start = torch.searchsorted(pos, values - _EPS)
        k_end = torch.searchsorted(pos, values + width - _EPS)
        q_start = q_end - counts
        return cls(tuple(zip(q_start.tolist(), q_end.tolist(), k_start.tolist(), k_end.tolist())))
