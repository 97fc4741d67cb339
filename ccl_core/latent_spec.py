"""What a model's latents mean (LatentSpec), and the checkpoint metadata that says it.

A checkpoint carries its latent facts in two metadata entries (strings, as safetensors metadata is):
  ccl_latent_spaces  JSON {"video": {...}, "audio": {...}, "text": {...}} with LatentSpec field names:
                     latent spaces, pixel / sample factors, native clip size, the null text
  ccl_shift          the sampling shift the model is meant for
`spec_metadata` writes them (training saves them; `stamp_file` adds them to an existing file) and
`model_spec` / `model_shift` read them. Ovi's files carry none: their facts come from ccl_core.ovi.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple, Union

import torch

from .header import CheckpointError, metadata_object, read_raw_header
from .ovi import OVI_CHANNELS, OVI_SHIFT, ovi_latent_facts

SPACES_METADATA_KEY = "ccl_latent_spaces"
SHIFT_METADATA_KEY = "ccl_shift"
DEFAULT_SHIFT = OVI_SHIFT  # a file that does not say its shift
# The fields each part of SPACES_METADATA_KEY holds (the rest of a LatentSpec comes from the model config).
METADATA_FIELDS = {
    "video": ("video_space", "temporal_factor", "causal", "spatial_factor", "native_width", "native_height",
              "native_seconds"),
    "audio": ("audio_space", "audio_sample_rate"),
    "text": ("null_text",),
}
# Models whose latents are not the identity defaults, so a file of theirs without the metadata is refused
# (with the fix) rather than decoded wrongly: the embedded ToyAV model (ccl_core.toyav.embedded).
NEEDS_METADATA = {"toyav-ccl": "python -m ccl_core stamp FILE"}


@dataclass
class LatentSpec:
    """What a model's latents mean: channels, rates, latent spaces and pixel/sample factors."""

    video_channels: int
    audio_channels: int
    video_latent_fps: float
    audio_latent_rate: float
    video_patch: Tuple[int, int, int] = (1, 1, 1)
    text_dim: int = 4096
    text_len: int = 512
    video_space: str = "identity"  # "wan22": Wan 2.2 VAE normalisation (Ovi); "identity": as is
    audio_space: str = "identity"
    temporal_factor: int = 1  # pixel frames per latent frame
    causal: bool = False  # Wan VAEs: the first latent frame is one pixel frame
    spatial_factor: int = 1  # pixels per latent cell
    audio_sample_rate: int = 16000  # sample rate of decoded audio
    name: str = ""
    # The model's null text (UCG's unconditional text, training's text dropout): "zeros" (Ovi, the CCL
    # default), or the embedding itself as nested lists [tokens, text_dim] (the embedded ToyAV model: its
    # text encoder's encoding of the empty prompt).
    null_text: Union[str, List[List[float]]] = "zeros"
    # The clip the model was trained on (0: unknown). CCL Empty Joint Latent uses it for 0 inputs and
    # warns about sizes far beyond it.
    native_width: int = 0
    native_height: int = 0
    native_seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.video_latent_fps * self.temporal_factor

    def pixel_frames(self, latent_frames: int) -> int:
        if self.causal:
            return (latent_frames - 1) * self.temporal_factor + 1
        return latent_frames * self.temporal_factor

    def latent_frames(self, pixel_frames: int) -> int:
        if self.causal:
            return (max(pixel_frames, 1) - 1) // self.temporal_factor + 1
        return max(1, math.ceil(pixel_frames / self.temporal_factor))

    def sizes(self, seconds: float, width: int, height: int):
        """(latent frames T, latent height, latent width, audio latents L, pixel frames, width, height)."""
        if seconds <= 0:
            raise ValueError(f"duration must be > 0 seconds, got {seconds}")
        pt, ph, pw = self.video_patch
        frames = round(seconds * self.fps) + (1 if self.causal else 0)
        t = self.latent_frames(frames)
        t = max(pt, math.ceil(t / pt) * pt)
        h = max(ph, (height // self.spatial_factor) // ph * ph)
        w = max(pw, (width // self.spatial_factor) // pw * pw)
        length = max(1, math.ceil(seconds * self.audio_latent_rate - 1e-6))
        return t, h, w, length, self.pixel_frames(t), w * self.spatial_factor, h * self.spatial_factor

    def native(self, seconds: float, width: int, height: int):
        """(seconds, width, height) with 0 meaning the model's native value."""
        if (not seconds or not width or not height) and not (self.native_seconds and self.native_width
                                                            and self.native_height):
            raise ValueError(f"model {self.name or '(unnamed)'} does not say its native size: set width, height "
                             "and seconds (0 means native)")
        return (seconds or self.native_seconds, width or self.native_width, height or self.native_height)

    def cost_vs_native(self, seconds: float, width: int, height: int) -> Optional[float]:
        """About how many times a native clip's step this clip's step costs (None: native unknown).

        Linear parts grow with the token count, self-attention with its square; a DiT of this size
        spends roughly equal time in both at its native size, so the estimate averages the two.
        """
        if not (self.native_seconds and self.native_width and self.native_height):
            return None
        tokens = lambda s, w, h: math.prod(self.sizes(s, w, h)[:3])  # noqa: E731
        ratio = tokens(seconds, width, height) / tokens(self.native_seconds, self.native_width, self.native_height)
        return 0.5 * ratio + 0.5 * ratio * ratio

    def to_dict(self) -> dict:
        d = asdict(self)
        d["video_patch"] = list(self.video_patch)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LatentSpec":
        d = dict(d)
        d["video_patch"] = tuple(d.get("video_patch", (1, 1, 1)))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def null_text_for(spec: Optional[LatentSpec], like: torch.Tensor) -> torch.Tensor:
    """The model's null text with like's batch, device and dtype (zeros shaped like `like` for "zeros")."""
    null = "zeros" if spec is None else spec.null_text
    if isinstance(null, str):
        if null != "zeros":
            raise ValueError(f"unknown null text {null!r}: a model's null text is 'zeros' or an embedding "
                             f"[tokens, dim] (metadata {SPACES_METADATA_KEY})")
        return torch.zeros_like(like)
    emb = torch.tensor(null, dtype=torch.float32)
    return emb.to(device=like.device, dtype=like.dtype).expand(like.shape[0], *emb.shape).clone()


def config_facts(config) -> dict:
    """The LatentSpec fields a ModelConfig gives: channels, rates, patch, text size, name."""
    return dict(video_channels=config.video_channels, audio_channels=config.audio_channels,
                video_latent_fps=float(config.video_latent_fps), audio_latent_rate=float(config.audio_latent_rate),
                video_patch=tuple(config.video_patch), text_dim=config.text_dim, text_len=config.text_len,
                name=config.name)


def model_spec(config, metadata: Optional[dict] = None) -> LatentSpec:
    """The latent spec of a ccl_core ModelConfig: its sizes and rates, and the facts its checkpoint's
    metadata gives (SPACES_METADATA_KEY); without them, Ovi's for Ovi-shaped models (48 video, 20 audio
    channels) and identity spaces for the rest (a model in NEEDS_METADATA is refused, naming the fix)."""
    base = config_facts(config)
    raw = (metadata or {}).get(SPACES_METADATA_KEY)
    if (config.video_channels, config.audio_channels) == OVI_CHANNELS:
        base.update(ovi_latent_facts(config.name))
    elif not raw and config.name in NEEDS_METADATA:
        raise CheckpointError(f"this {config.name} checkpoint does not say its latent spaces, shift and native size "
                              f"(metadata {SPACES_METADATA_KEY}, from before they were saved with the model); add "
                              f"them with `{NEEDS_METADATA[config.name]}`")
    if raw:
        extra = metadata_object(raw, SPACES_METADATA_KEY, f"{sorted(METADATA_FIELDS)}")
        for part in METADATA_FIELDS:
            base.update(extra.get(part) or {})
    return LatentSpec.from_dict(base)


def model_shift(metadata: Optional[dict] = None) -> float:
    """The sampling shift a checkpoint says (SHIFT_METADATA_KEY), else DEFAULT_SHIFT (Ovi's)."""
    try:
        return float((metadata or {}).get(SHIFT_METADATA_KEY, DEFAULT_SHIFT))
    except ValueError:
        return DEFAULT_SHIFT


def spec_metadata(spec: LatentSpec, shift: float) -> Dict[str, str]:
    """The metadata entries that make model_spec / model_shift give `spec` and `shift` back."""
    d = spec.to_dict()
    spaces = {part: {k: d[k] for k in fields} for part, fields in METADATA_FIELDS.items()}
    return {SPACES_METADATA_KEY: json.dumps(spaces, sort_keys=True), SHIFT_METADATA_KEY: repr(float(shift))}


def stamp_file(path, metadata: Dict[str, str], out=None) -> str:
    """Add (or replace) metadata entries of a safetensors file, its tensor bytes copied unchanged.

    Writes `out` (default: `path` itself, replaced atomically through a temp file) and returns it.
    """
    path = os.fspath(path)
    out = os.fspath(out or path)
    header, base, _ = read_raw_header(path)
    meta = dict(header.get("__metadata__") or {})
    meta.update({str(k): str(v) for k, v in metadata.items()})
    header["__metadata__"] = meta
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data section stays 8-byte aligned, as safetensors writes it
    tmp = out + ".tmp"
    with open(path, "rb") as f, open(tmp, "wb") as g:
        f.seek(base)
        g.write(struct.pack("<Q", len(raw)) + raw)
        while chunk := f.read(1 << 24):
            g.write(chunk)
    os.replace(tmp, out)
    return out
