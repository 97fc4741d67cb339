"""Rotary position embedding on one physical time axis (the 'aligned RoPE' half of TARP).

The head dimension is split as in Wan: time, height, width. Video token (f, h, w) rotates its time
pairs by f * w_t, its height pairs by h * w_h and its width pairs by w * w_w. An audio token at
latent step j rotates only the time pairs, by (j * s) * w_t, where s is the audio step expressed in
video latent frames. With s equal to the physical rate ratio, a video token and an audio token that
describe the same instant get the same temporal phase. Pairs are adjacent channels (2i, 2i + 1),
the complex-view convention of Wan and Ovi.
"""

from __future__ import annotations

import torch


def _inv_freq(n_real: int, theta: float, device) -> torch.Tensor:
    return 1.0 / torch.pow(theta, torch.arange(0, n_real, 2, device=device, dtype=torch.float64) / n_real)


def video_angles(grid, split, theta: float = 10000.0, device=None, time_stride: float = 1.0) -> torch.Tensor:
    """Angles [T'H'W', head_dim / 2] for a video patch grid (T', H', W')."""
    t, h, w = grid
    dt, dh, dw = split
    ft = torch.arange(t, device=device, dtype=torch.float64) * time_stride
    at = torch.outer(ft, _inv_freq(dt, theta, device))
    ah = torch.outer(torch.arange(h, device=device, dtype=torch.float64), _inv_freq(dh, theta, device))
    aw = torch.outer(torch.arange(w, device=device, dtype=torch.float64), _inv_freq(dw, theta, device))
    return torch.cat([
        at[:, None, None].expand(t, h, w, -1),
        ah[None, :, None].expand(t, h, w, -1),
        aw[None, None, :].expand(t, h, w, -1),
    ], dim=-1).reshape(t * h * w, -1)


def audio_angles(length: int, split, scale: float, theta: float = 10000.0, device=None) -> torch.Tensor:
    """Angles [L, head_dim / 2]: only the time pairs turn, at position j * scale."""
    dt, dh, dw = split
    pos = torch.arange(length, device=device, dtype=torch.float64) * scale
    at = torch.outer(pos, _inv_freq(dt, theta, device))
    rest = torch.zeros(length, (dh + dw) // 2, device=device, dtype=torch.float64)
    return torch.cat([at, rest], dim=1)


class Rotary:
    """Precomputed cos/sin for one token sequence; apply() rotates [B, L, H, D] tensors."""

    def __init__(self, angles: torch.Tensor, dtype=torch.float32):
        self.cos = torch.cos(angles).to(dtype)[None, :, None, :]  # [1, L, 1, D/2]
        self.sin = torch.sin(angles).to(dtype)[None, :, None, :]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float().unflatten(-1, (-1, 2))
        x0, x1 = xf[..., 0], xf[..., 1]
        out = torch.stack([x0 * self.cos - x1 * self.sin, x0 * self.sin + x1 * self.cos], dim=-1)
        return out.flatten(-2).to(x.dtype)
