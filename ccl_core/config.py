"""The model config: one dataclass builds both towers and the fusion, and travels inside checkpoints.

Sizes follow the Wan 2.x / Ovi layout (two towers of equal width and depth). The CCL switches are
independent so that each module can be ablated; see docs/DESIGN-NOTES.md for how they are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .jsonconfig import JsonConfig

FUSION_MODES = ("ccl", "gated", "ovi")


@dataclass
class ModelConfig(JsonConfig):
    # Tower sizes (shared by the video and the audio tower, as in Ovi).
    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True

    # Video tower: latent [B, C, T, H, W], 3-D patches.
    video_channels: int = 48
    video_patch: Tuple[int, int, int] = (1, 2, 2)
    # Audio tower: latent [B, C, L], Conv1d stem + SwiGLU conv MLP (Ovi's MMAudio stem).
    audio_channels: int = 20
    audio_embed_kernel: int = 7
    audio_embed_hidden: Optional[int] = None  # None: Ovi's formula from dim

    # Latent rates place both streams on one physical time axis (seconds).
    video_latent_fps: float = 6.0  # latent frames per second (Wan 2.2 VAE: 24 fps / 4)
    audio_latent_rate: float = 31.25  # audio latents per second (MMAudio 16 kHz VAE)

    # Cross-modal fusion (docs/DESIGN-NOTES.md, "LCT / CCA" and "TARP").
    fusion: str = "ccl"  # "ccl": ungated CCA; "gated": zero-init gated fusion; "ovi": plain Ovi fusion
    n_ctx: int = 8  # learnable context tokens per block and direction (LCT)
    tarp_window: Optional[int] = 2  # partition width in latent video frames; None = full attention
    aligned_rope: bool = True  # audio temporal RoPE on the video time axis
    # Self-attention window in latent video frames: on a longer clip each frame's queries read the
    # keys of this many frames around it (self_windows.py); set to the clip length the model was
    # trained on. None: the whole clip (Wan, Ovi).
    self_attn_window: Optional[int] = None
    audio_rope_scale: Optional[float] = None  # fixed audio RoPE scale (Ovi: 0.19676); None = from rates
    ctx_logit_init: float = 0.0  # initial logit offset of the context tokens (see attention.py)
    # Zero-initialise the fusion value projection (v_fusion) of a freshly built model, so that
    # cross-modal attention starts as an exact no-op. It speeds up the ToyAV audio tower's
    # pretraining but did not give better clips in one run each (docs/ABLATIONS.md): off by default.
    zero_init_fusion: bool = False

    rope_theta: float = 10000.0
    timestep_scale: float = 1000.0  # the towers embed t * timestep_scale (Wan convention)
    name: str = ""

    def __post_init__(self):
        self.video_patch = tuple(int(p) for p in self.video_patch)
        self.validate()

    # ------------------------------------------------------------------ checks and derived sizes
    def validate(self) -> None:
        problems = []
        sizes = ("dim", "ffn_dim", "num_heads", "num_layers", "freq_dim", "text_dim", "text_len",
                 "video_channels", "audio_channels", "audio_embed_kernel")
        small = [f"{k} must be >= 1, got {getattr(self, k)}" for k in sizes if not getattr(self, k) >= 1]
        if self.audio_embed_hidden is not None and not self.audio_embed_hidden >= 1:
            small.append(f"audio_embed_hidden must be None or >= 1, got {self.audio_embed_hidden}")
        if small:  # the checks below divide by these
            raise ValueError("Invalid ModelConfig: " + "; ".join(small))
        if self.fusion not in FUSION_MODES:
            problems.append(f"fusion must be one of {FUSION_MODES}, got {self.fusion!r}")
        if self.dim % self.num_heads:
            problems.append(f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        elif self.head_dim % 2 or (self.head_dim - 4 * (self.head_dim // 6)) % 2:
            problems.append(f"head_dim {self.head_dim} cannot be split into even RoPE parts")
        if self.n_ctx < 0:
            problems.append(f"n_ctx must be >= 0, got {self.n_ctx}")
        if self.fusion == "ovi" and self.n_ctx:
            problems.append("fusion='ovi' has no context tokens: set n_ctx=0 or fusion='ccl'")
        if self.self_attn_window is not None and self.self_attn_window < 1:
            problems.append(f"self_attn_window must be None or >= 1 latent frame, got {self.self_attn_window}")
        if self.tarp_window is not None and self.tarp_window < 1:
            problems.append(f"tarp_window must be None or >= 1 latent frame, got {self.tarp_window}")
        if len(self.video_patch) != 3 or min(self.video_patch) < 1:
            problems.append(f"video_patch must be 3 positive ints, got {self.video_patch}")
        if self.video_latent_fps <= 0 or self.audio_latent_rate <= 0:
            problems.append("video_latent_fps and audio_latent_rate must be positive")
        if problems:
            raise ValueError("Invalid ModelConfig: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def rope_split(self) -> Tuple[int, int, int]:
        """Head-dim split (time, height, width) in real dims, as in Wan: 44/42/42 for 128."""
        d = self.head_dim
        return d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6)

    @property
    def audio_time_scale(self) -> float:
        """Audio latent step in video latent frames: the physical time ratio of the two streams."""
        return self.video_latent_fps / self.audio_latent_rate

    @property
    def audio_rope_factor(self) -> float:
        """Multiplier on the audio index inside the audio tower's temporal RoPE."""
        if not self.aligned_rope:
            return 1.0
        if self.audio_rope_scale is not None:
            return self.audio_rope_scale
        return self.audio_time_scale

    @property
    def audio_hidden(self) -> int:
        if self.audio_embed_hidden is not None:
            return self.audio_embed_hidden
        hidden = int(2 * (4 * self.dim) / 3)  # Ovi's ConvMLP(dim, 4 * dim), multiple of 256
        return 256 * ((hidden + 255) // 256)


# ---------------------------------------------------------------------- presets
def tiny_config(**overrides) -> ModelConfig:
    """A few-thousand-parameter model for unit tests."""
    base = dict(
        name="tiny", dim=32, ffn_dim=64, num_heads=2, num_layers=2, freq_dim=16, text_dim=16,
        text_len=8, video_channels=4, audio_channels=3, audio_embed_hidden=32,
        video_latent_fps=4.0, audio_latent_rate=16.0, n_ctx=4, tarp_window=2,
    )
    base.update(overrides)
    return ModelConfig(**base)


OVI_AUDIO_ROPE_SCALE = 0.19676


def ovi_config(**overrides) -> ModelConfig:
    """Ovi's 11B layout (twin Wan 2.2-5B towers), plain fusion. Pass CCL switches to add CCL."""
    base = dict(
        name="ovi-720", dim=3072, ffn_dim=14336, num_heads=24, num_layers=30, freq_dim=256,
        text_dim=4096, text_len=512, video_channels=48, video_patch=(1, 2, 2), audio_channels=20,
        video_latent_fps=6.0, audio_latent_rate=31.25, fusion="ovi", n_ctx=0, tarp_window=None,
        aligned_rope=True, audio_rope_scale=OVI_AUDIO_ROPE_SCALE,
    )
    base.update(overrides)
    return ModelConfig(**base)


PRESETS = {"tiny": tiny_config, "ovi": ovi_config}
