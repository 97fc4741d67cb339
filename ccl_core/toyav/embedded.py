"""The embedded ToyAV model: its config, and loading the shipped pipeline (model, text, autoencoders).

The diffusion model's latent shapes and rates come from the autoencoders: video [8, 16, 8, 8] at 8
latent fps, audio [8, 125] at 62.5 latents/s, text [5, 64].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..assets import ASSETS, MODEL_FILE
from ..config import ModelConfig
from ..guidance import Guidance
from ..latent_spec import LatentSpec, config_facts, spec_metadata, stamp_file

SHIFT = 3.0  # the sampling shift the embedded model is meant for (its training's timestep_shift default too)
# The guidance it is meant for: UCG joint at 3 / 3 (docs/TOYAV.md, "Quality and speed"); the command line's
# default, what the benchmarks measure. Ovi's own scales are Guidance's defaults (4 / 3), the nodes' too.
GUIDANCE = Guidance("joint", video_scale=3.0, audio_scale=3.0)


def clip_window(video_latent_fps: float) -> int:
    """The world's clip in latent video frames: the self-attention window of a model trained on it
    (self_windows.py)."""
    from .clip import DURATION_S

    return round(DURATION_S * video_latent_fps)


def toyav_config(video_ae=None, audio_ae=None, text_encoder=None, **overrides) -> ModelConfig:
    """The embedded model's config; sizes follow the autoencoders when they are given. Self-attention
    is windowed to the world's clip, the length it trains on (clip_window)."""
    base = dict(
        name="toyav-ccl", dim=128, ffn_dim=384, num_heads=2, num_layers=4, freq_dim=64,
        text_dim=64, text_len=5, video_channels=8, video_patch=(1, 2, 2), audio_channels=8,
        audio_embed_kernel=7, audio_embed_hidden=256, video_latent_fps=8.0, audio_latent_rate=62.5,
        fusion="ccl", n_ctx=4, tarp_window=2, aligned_rope=True,
    )
    if video_ae is not None:
        base.update(video_channels=video_ae.latent_channels, video_latent_fps=video_ae.video_latent_fps)
    if audio_ae is not None:
        base.update(audio_channels=audio_ae.latent_channels, audio_latent_rate=audio_ae.audio_latent_rate)
    if text_encoder is not None:
        base.update(text_dim=text_encoder.text_dim, text_len=text_encoder.max_tokens)
    base["self_attn_window"] = clip_window(base["video_latent_fps"])
    base.update(overrides)
    return ModelConfig(**base)


def toyav_spec(config: ModelConfig, video_ae, audio_ae, text_encoder) -> LatentSpec:
    """A ToyAV model's latent facts, read off the parts it was trained with: the autoencoders' latents are
    already normalised (identity spaces), their factors and sample rate; the world's clip as the native
    size; the text encoder's empty prompt as the null text."""
    from .clip import DURATION_S, FRAME_SIZE

    facts = dict(temporal_factor=int(video_ae.temporal_factor), causal=False,
                 spatial_factor=int(video_ae.spatial_factor), audio_sample_rate=int(audio_ae.sample_rate),
                 native_width=FRAME_SIZE, native_height=FRAME_SIZE, native_seconds=float(DURATION_S),
                 null_text=text_encoder.null(1)[0].detach().float().cpu().tolist())
    return LatentSpec.from_dict({**config_facts(config), **facts})


def toyav_metadata(config: ModelConfig, video_ae=None, audio_ae=None, text_encoder=None, shift: float = SHIFT) -> dict:
    """The checkpoint metadata of a ToyAV model (latent_spec.spec_metadata), the shipped parts by default."""
    from ..header import CheckpointError
    from .autoencoders import load_audio_ae, load_video_ae
    from .text import load_text_encoder

    video_ae, audio_ae = video_ae or load_video_ae(), audio_ae or load_audio_ae()
    text_encoder = text_encoder or load_text_encoder()
    have = (config.video_channels, config.audio_channels, config.text_dim)
    parts = (video_ae.latent_channels, audio_ae.latent_channels, text_encoder.text_dim)
    if have != parts:
        raise CheckpointError(f"model {config.name or '(unnamed)'} has (video, audio, text) channels {have} but the "
                              f"ToyAV autoencoders and text encoder give {parts}: it is not a ToyAV model")
    return spec_metadata(toyav_spec(config, video_ae, audio_ae, text_encoder), shift)


def stamp(path, out=None, video_ae=None, audio_ae=None, text_encoder=None) -> str:
    """Add toyav_metadata to an existing ToyAV checkpoint (in place, or to `out`), its tensors unchanged.
    A config written before self-attention windows gets the embedded model's window (its 2 s clip),
    which a model trained on 2 s clips runs unchanged up to 2 s."""
    from dataclasses import replace

    from ..checkpoint import CONFIG_KEY, infer_config, read_header

    config = infer_config(read_header(path))
    metadata = toyav_metadata(config, video_ae, audio_ae, text_encoder)
    if config.self_attn_window is None:
        metadata[CONFIG_KEY] = replace(config, self_attn_window=clip_window(config.video_latent_fps)).to_json()
    return stamp_file(path, metadata, out)


@dataclass
class Pipeline:
    """Everything generation needs, on one device."""

    model: torch.nn.Module
    text_encoder: torch.nn.Module
    video_ae: torch.nn.Module
    audio_ae: torch.nn.Module

    @property
    def video_fps(self) -> float:
        return float(self.video_ae.fps)

    @property
    def sample_rate(self) -> int:
        return int(self.audio_ae.sample_rate)

    @property
    def native_seconds(self) -> float:
        """The clip length the model was trained on (ToyAV's clip format: 2 s); generation's default."""
        from .clip import DURATION_S

        return DURATION_S


def load_pipeline(model_path: Optional[str] = None, device="cpu", dtype: Optional[str] = None,
                  video_ae_path=None, audio_ae_path=None, text_path=None, overrides: Optional[dict] = None) -> Pipeline:
    """The shipped embedded model (or a CCL checkpoint at model_path) with the shipped ToyAV parts;
    `overrides` replaces fields of the file's config (e.g. {"self_attn_window": None}: full attention)."""
    from ..checkpoint import load_checkpoint
    from .autoencoders import load_audio_ae, load_video_ae
    from .text import load_text_encoder

    path = Path(model_path) if model_path else ASSETS / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}" + (
            "; the embedded model is trained with `python -m ccl_lab.train_embedded`" if not model_path else ""))
    model = load_checkpoint(path, dtype=dtype, device=device, overrides=overrides)
    return Pipeline(model, load_text_encoder(text_path, device=device), load_video_ae(video_ae_path, device=device),
                    load_audio_ae(audio_ae_path, device=device))
