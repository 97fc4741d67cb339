"""One tower of the dual-stream model (video or audio): embeddings, blocks, head.

Module names match Ovi's `WanModel` so that `video_model.*` / `audio_model.*` checkpoint keys load
unchanged.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from .attention import DEFAULT_ATTENTION, AttentionFn
from .block import Block
from .config import ModelConfig
from .layers import AudioEmbedding, Head, TorchOps, sinusoidal_embedding, video_patch_embedding, video_tokens
from .rope import Rotary, audio_angles, video_angles
from .self_windows import TimeWindows


class Tower(nn.Module):
    def __init__(self, cfg: ModelConfig, modality: str, ops=TorchOps, attention: AttentionFn = DEFAULT_ATTENTION):
        super().__init__()
        if modality not in ("video", "audio"):
            raise ValueError(f"modality must be 'video' or 'audio', got {modality!r}")
        self.cfg = cfg
        self.modality = modality
        dim = cfg.dim
        if modality == "video":
            self.patch_embedding = video_patch_embedding(cfg.video_channels, dim, cfg.video_patch, ops)
            out_features = cfg.video_channels * math.prod(cfg.video_patch)
        else:
            self.patch_embedding = AudioEmbedding(cfg.audio_channels, dim, cfg.audio_hidden, cfg.audio_embed_kernel, ops)
            out_features = cfg.audio_channels
        self.text_embedding = nn.Sequential(ops.Linear(cfg.text_dim, dim), nn.GELU(approximate="tanh"),
                                            ops.Linear(dim, dim))
        self.time_embedding = nn.Sequential(ops.Linear(cfg.freq_dim, dim), nn.SiLU(), ops.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), ops.Linear(dim, 6 * dim))
        self.blocks = nn.ModuleList(Block(cfg, ops, attention) for _ in range(cfg.num_layers))
        self.head = Head(dim, out_features, cfg.eps, ops)

    # ------------------------------------------------------------------ inputs
    def embed(self, x: torch.Tensor):
        """Latent -> (tokens [B, L, dim], grid). Video grid is (T', H', W'); audio grid is (L,)."""
        if self.modality == "video":
            return video_tokens(self.patch_embedding(x))
        tokens = self.patch_embedding(x)
        return tokens, (tokens.shape[1],)

    def embed_time(self, sigma: torch.Tensor, dtype: torch.dtype):
        """Per-sample noise level [B] -> e [B, 1, dim] (head) and e0 [B, 1, 6, dim] (blocks)."""
        sin = sinusoidal_embedding(self.cfg.freq_dim, sigma * self.cfg.timestep_scale).to(dtype)
        e = self.time_embedding(sin)
        e0 = self.time_projection(e).unflatten(-1, (6, self.cfg.dim))
        return e.unsqueeze(1), e0.unsqueeze(1)

    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        """Text [B, Lt, text_dim], zero-padded to text_len as Wan does, -> [B, text_len, dim]."""
        pad = self.cfg.text_len - text.shape[1]
        if pad > 0:
            text = torch.cat([text, text.new_zeros(text.shape[0], pad, text.shape[2])], dim=1)
        return self.text_embedding(text)

    def positions(self, grid, device) -> torch.Tensor:
        """Time position of every token on the shared axis, in latent video frames."""
        if self.modality == "video":
            t, h, w = grid
            f = torch.arange(t, device=device, dtype=torch.float64) * self.cfg.video_patch[0]
            return f.repeat_interleave(h * w)
        return torch.arange(grid[0], device=device, dtype=torch.float64) * self.cfg.audio_time_scale

    def self_windows(self, grid) -> Optional[TimeWindows]:
        """Self-attention's time windows for this grid (self_windows.py); None: the whole clip."""
        step = self.cfg.video_patch[0] if self.modality == "video" else self.cfg.audio_time_scale
        return TimeWindows.plan(self.positions(grid, "cpu"), self.cfg.self_attn_window, step)

    def prefix_mask(self, grid, prefix: torch.Tensor) -> torch.Tensor:
        """[B, L, 1] bool: tokens inside each sample's clean prefix (prefix [B] in latent frames for
        video, latents for audio). A video token covers video_patch[0] frames from its start."""
        start = self.positions(grid, prefix.device)  # the latent frame / latent index each token starts at
        if self.modality == "audio":
            start = torch.arange(grid[0], device=prefix.device, dtype=torch.float64)
        return (start.view(1, -1) < prefix.view(-1, 1).double()).unsqueeze(-1)

    def rotary(self, grid, device) -> Rotary:
        cfg = self.cfg
        if self.modality == "video":
            angles = video_angles(grid, cfg.rope_split, cfg.rope_theta, device, time_stride=cfg.video_patch[0])
        else:
            angles = audio_angles(grid[0], cfg.rope_split, cfg.audio_rope_factor, cfg.rope_theta, device)
        return Rotary(angles)

    # ------------------------------------------------------------------ output
    def unpatchify(self, x: torch.Tensor, grid) -> torch.Tensor:
        if self.modality == "audio":
            return x.transpose(1, 2)  # [B, L, C] -> [B, C, L]
        b = x.shape[0]
        pt, ph, pw = self.cfg.video_patch
        c = self.cfg.video_channels
        t, h, w = grid
        x = x.view(b, t, h, w, pt, ph, pw, c)
        x = torch.einsum("bfhwpqrc->bcfphqwr", x)
        return x.reshape(b, c, t * pt, h * ph, w * pw)
