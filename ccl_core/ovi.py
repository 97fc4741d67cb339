"""Ovi checkpoints: recognise them and infer the model config from their keys, shapes and name.

Ovi (character-ai/Ovi) stores twin Wan 2.2-5B towers under `video_model.` / `audio_model.` with the
fusion layers inside every block's `cross_attn`; our DualStreamModel uses the same names, so the
weights load as they are. Only the config has to be inferred, since Ovi files carry none.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from .config import OVI_AUDIO_ROPE_SCALE, ModelConfig, ovi_config
from .header import CheckpointError

OVI_HEAD_DIM = 128  # Wan 2.x: heads are not visible in the shapes; Ovi uses 24 x 128

# Ovi's negative prompts (ovi/configs/inference/inference_fusion.yaml). Its other inference defaults,
# guidance video 4.0 / audio 3.0 with a negative pass that skips fusion block 11, are `Guidance`'s.
OVI_VIDEO_NEGATIVE = "jitter, bad hands, blur, distortion"
OVI_AUDIO_NEGATIVE = "robotic, muffled, echo, distorted"

# Ovi's released files and the clip they were trained for (video latent frames, audio latents).
OVI_FILES = {
    "model.safetensors": ("ovi-720x720-5s", 31, 157),
    "model_960x960.safetensors": ("ovi-960x960-5s", 31, 157),
    "model_960x960_10s.safetensors": ("ovi-960x960-10s", 61, 314),
}


# The latent facts of Ovi's files and of CCL models built on them (48 video, 20 audio channels): the Wan 2.2
# VAE (x4 time, causal, x16 space, normalised latents) and the 16 kHz MMAudio VAE, which ComfyUI decodes at
# 44.1 kHz; 720x720, 5 s unless the variant's name says otherwise; Ovi's sampling shift.
OVI_CHANNELS = (48, 20)
OVI_LATENT_SPACES = dict(video_space="wan22", audio_space="identity", temporal_factor=4, causal=True,
                         spatial_factor=16, audio_sample_rate=44100, native_width=720, native_height=720,
                         native_seconds=5.0)
OVI_SHIFT = 5.0


def ovi_latent_facts(name: str) -> dict:
    """OVI_LATENT_SPACES with the native size a variant's name gives (ovi_variant's names)."""
    facts = dict(OVI_LATENT_SPACES)
    size = re.search(r"(\d+)x(\d+)-(\d+)s", name or "")
    if size:
        facts.update(native_width=int(size[1]), native_height=int(size[2]), native_seconds=float(size[3]))
    elif "10s" in (name or ""):
        facts.update(native_seconds=10.0)
    return facts


def ovi_variant(path: str):
    """(name, video latent frames, audio latents) for a known Ovi file name, by its base name."""
    base = os.path.basename(path)
    if base in OVI_FILES:
        return OVI_FILES[base]
    if re.search(r"10s", base):
        return ("ovi-10s", 61, 314)
    return ("ovi-5s", 31, 157)


def ovi_config_from_header(header, overrides: Optional[dict] = None) -> ModelConfig:
    shape = lambda k: header.tensors[k].shape
    dim = shape("video_model.blocks.0.self_attn.q.weight")[0]
    layers_v = 1 + max(int(k.split(".")[2]) for k in header.tensors if k.startswith("video_model.blocks."))
    layers_a = 1 + max(int(k.split(".")[2]) for k in header.tensors if k.startswith("audio_model.blocks."))
    if layers_v != layers_a:
        raise CheckpointError(f"{header.path}: video tower has {layers_v} blocks but audio tower {layers_a}; "
                              "an Ovi checkpoint has equal depths")
    patch_w = shape("video_model.patch_embedding.weight")  # [dim, C, pt, ph, pw]
    name, frames, audio_latents = ovi_variant(header.path)
    cfg = dict(
        name=name,
        dim=dim,
        ffn_dim=shape("video_model.blocks.0.ffn.0.weight")[0],
        num_heads=max(1, dim // OVI_HEAD_DIM),
        num_layers=layers_v,
        freq_dim=shape("video_model.time_embedding.0.weight")[1],
        text_dim=shape("video_model.text_embedding.0.weight")[1],
        video_channels=patch_w[1],
        video_patch=tuple(patch_w[2:]),
        audio_channels=shape("audio_model.patch_embedding.0.weight")[1],
        audio_embed_kernel=shape("audio_model.patch_embedding.0.weight")[2],
        audio_embed_hidden=shape("audio_model.patch_embedding.2.w1.weight")[0],
        qk_norm="video_model.blocks.0.self_attn.norm_q.weight" in header.tensors,
        cross_attn_norm="video_model.blocks.0.norm3.weight" in header.tensors,
        audio_rope_scale=OVI_AUDIO_ROPE_SCALE,
    )
    cfg.update(overrides or {})
    if cfg.get("fusion", "ovi") == "ovi" and cfg.get("n_ctx", 0):
        cfg["fusion"] = "ccl"  # context tokens requested: CCL fusion on top of Ovi's weights
    return ovi_config(**cfg)
