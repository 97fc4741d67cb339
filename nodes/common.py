"""Shared pieces of the node layer: the joint-latent spec, latent spaces and LATENT helpers.

A joint LATENT is `{"samples": NestedTensor((video [B, Cv, T, H, W], audio [B, Ca, L])), "ccl": {...}}`.
The "ccl" entry is plain data that native sampler nodes carry along untouched (they copy the LATENT
dict): the spec of the model that sized the latent (rates, latent spaces, pixel factors), the task
set by a task node and the clean conditioning latent of a2v / v2a. Tensors in "samples" are in the
model's space (for Ovi: Wan 2.2 normalised video latents, raw MMAudio latents); Split converts to
the VAE's raw space so that native VAE Decode / VAE Decode Audio read them.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import torch

from ..ccl_core.routing import TASKS
from ..ccl_core.toyav import clip

CCL_KEY = "ccl"
CATEGORY = "CCL"
TASK_NAMES = tuple(TASKS)  # DCR's table (ccl_core.routing); a task's id is its index, to batch it in a cond
TASK_IDS = {name: i for i, name in enumerate(TASK_NAMES)}
# The cond keys a task node sets (read by the model adapter, nodes/comfy_model.py); every guidance branch
# carries the positive's.
TASK_KEYS = ("ccl_task", "ccl_clean_video", "ccl_clean_audio", "ccl_prefix_video", "ccl_prefix_audio")
# Optional checkpoint metadata: {"video": {...LatentSpec video fields...}, "audio": {...}} as JSON.
SPACES_METADATA_KEY = "ccl_latent_spaces"
SHIFT_METADATA_KEY = "ccl_shift"


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
    null_text: str = "zeros"  # the model's null text: "zeros" (Ovi, UCG default) or "toyav" (see null_text_for)
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


OVI_SPACES = dict(video_space="wan22", audio_space="identity", temporal_factor=4, causal=True,
                  spatial_factor=16, audio_sample_rate=44100, native_width=720, native_height=720, native_seconds=5.0)
# The embedded ToyAV model (config name "toyav-ccl", ccl_core.toyav.embedded): its autoencoders' latents are
# already normalised (identity spaces); x2 time, x8 space, 16 kHz sound; the null text is the ToyAV
# encoder's empty prompt. nodes/toyav.py checks these against the autoencoders.
TOYAV_NAME = "toyav-ccl"
TOYAV_SPACES = dict(temporal_factor=2, causal=False, spatial_factor=8, audio_sample_rate=16000, null_text="toyav",
                    native_width=clip.FRAME_SIZE, native_height=clip.FRAME_SIZE, native_seconds=clip.DURATION_S)
DEFAULT_SHIFTS = {TOYAV_NAME: 3.0}  # when the file has no ccl_shift (ccl_core.generate uses 3.0 for ToyAV)


def model_spec(config, metadata: Optional[dict] = None) -> LatentSpec:
    """The latent spec of a ccl_core ModelConfig, from checkpoint metadata or the Ovi defaults.

    Files with 48 video and 20 audio channels (Ovi and CCL models built on it) use the Wan 2.2
    VAE (x4 time, x16 space, normalised latents) and the 16 kHz MMAudio VAE, which ComfyUI decodes
    at 44.1 kHz. Anything else is taken as identity spaces unless the file says otherwise in its
    `ccl_latent_spaces` metadata (JSON with the LatentSpec field names).
    """
    base = dict(video_channels=config.video_channels, audio_channels=config.audio_channels,
                video_latent_fps=float(config.video_latent_fps), audio_latent_rate=float(config.audio_latent_rate),
                video_patch=tuple(config.video_patch), text_dim=config.text_dim, text_len=config.text_len,
                name=config.name)
    if (config.video_channels, config.audio_channels) == (48, 20):
        base.update(OVI_SPACES)
        size = re.search(r"(\d+)x(\d+)-(\d+)s", config.name or "")  # ccl_core.ovi's variant names
        if size:
            base.update(native_width=int(size[1]), native_height=int(size[2]), native_seconds=float(size[3]))
        elif "10s" in (config.name or ""):
            base.update(native_seconds=10.0)
    if config.name == TOYAV_NAME:
        base.update(TOYAV_SPACES)
    raw = (metadata or {}).get(SPACES_METADATA_KEY)
    if raw:
        try:
            extra = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"checkpoint metadata {SPACES_METADATA_KEY} is not valid JSON: {e}") from None
        for part in ("video", "audio"):
            base.update((extra or {}).get(part, {}))
    return LatentSpec.from_dict(base)


# ---------------------------------------------------------------------- null text
# A CONDITIONING entry may carry its text encoder's null text under this key (CCL ToyAV Text Encode
# sets it); null_text_like prefers it over the model's.
NULL_TEXT_KEY = "ccl_null_text_embedding"


def null_text_for(spec: Optional[LatentSpec], like: torch.Tensor) -> torch.Tensor:
    """The model's null text (UCG's unconditional text, training's text dropout) with like's batch.

    "zeros": zero embeddings shaped like `like` (Ovi and the CCL default). "toyav": the shipped ToyAV
    text encoder's encoding of the empty prompt, [B, 5, 64].
    """
    kind = getattr(spec, "null_text", "zeros") if spec is not None else "zeros"
    if kind == "zeros":
        return torch.zeros_like(like)
    if kind == "toyav":
        from .toyav import embedded_null_text
        return embedded_null_text(like.shape[0]).to(device=like.device, dtype=like.dtype)
    raise ValueError(f"unknown null text kind {kind!r}")


def null_text_like(conditioning, spec: Optional[LatentSpec] = None):
    """The null text for every entry of a CONDITIONING: the entry's own encoder's (NULL_TEXT_KEY), else
    the model's (spec), else zeros."""
    out = []
    for t, d in conditioning:
        null = d.get(NULL_TEXT_KEY)
        if torch.is_tensor(null):
            null = null.to(device=t.device, dtype=t.dtype)
            if null.shape[0] != t.shape[0]:
                null = null[:1].expand(t.shape[0], *null.shape[1:])
        else:
            null = null_text_for(spec, t)
        out.append([null, dict(d)])
    return out


# ---------------------------------------------------------------------- latent spaces
def _wan22():
    import comfy.latent_formats
    return comfy.latent_formats.Wan22()


def to_vae_space(space: str, x: torch.Tensor) -> torch.Tensor:
    """Model-space latent -> the raw latent a ComfyUI VAE decodes."""
    if space == "identity":
        return x
    if space == "wan22":
        return _wan22().process_out(x)
    raise ValueError(f"unknown latent space {space!r}")


def to_model_space(space: str, x: torch.Tensor) -> torch.Tensor:
    if space == "identity":
        return x
    if space == "wan22":
        return _wan22().process_in(x)
    raise ValueError(f"unknown latent space {space!r}")


# ---------------------------------------------------------------------- LATENT helpers
def nested(tensors):
    import comfy.nested_tensor
    return comfy.nested_tensor.NestedTensor(list(tensors))


def split_joint(latent: dict, what: str = "this node") -> Tuple[torch.Tensor, torch.Tensor]:
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if samples is None or not getattr(samples, "is_nested", False):
        shape = list(samples.shape) if torch.is_tensor(samples) else type(samples).__name__
        raise ValueError(f"{what} needs a joint audio-video LATENT (from 'CCL Empty Joint Latent' or "
                         f"'CCL Join Latents'); got a plain latent {shape}")
    parts = samples.unbind()
    if len(parts) != 2:
        raise ValueError(f"{what}: a joint latent holds 2 tensors (video, audio), this one holds {len(parts)}")
    return parts[0], parts[1]


def latent_spec(latent: dict, model=None) -> LatentSpec:
    meta = latent.get(CCL_KEY, {}) if isinstance(latent, dict) else {}
    if "spec" in meta:
        return LatentSpec.from_dict(meta["spec"])
    if model is not None:
        return spec_of(model)
    raise ValueError("this joint latent carries no CCL spec: make it with 'CCL Empty Joint Latent' or "
                     "'CCL Join Latents'")


def spec_of(model) -> LatentSpec:
    """The LatentSpec of a MODEL (ModelPatcher) loaded by the CCL loader."""
    spec = getattr(getattr(model, "model", None), "ccl_spec", None)
    if spec is None:
        raise ValueError("this MODEL is not a CCL / Ovi audio-video model: load it with 'CCL Model Loader'")
    return spec


def make_joint_latent(video, audio, spec: LatentSpec, meta: Optional[dict] = None) -> dict:
    m = {"spec": spec.to_dict(), "task": "t2av"}
    m.update(meta or {})
    return {"samples": nested((video, audio)), CCL_KEY: m}


def fit_length(x: torch.Tensor, n: int, dim: int = -1) -> torch.Tensor:
    """Trim, or pad by repeating the last element, along `dim` to length n."""
    cur = x.shape[dim]
    if cur == n:
        return x
    if cur > n:
        return x.narrow(dim, 0, n)
    if cur == 0:
        raise ValueError("cannot pad an empty tensor")
    last = x.narrow(dim, cur - 1, 1)
    reps = [1] * x.ndim
    reps[dim] = n - cur
    return torch.cat([x, last.repeat(*reps)], dim=dim)


def fit_batch(x: torch.Tensor, b: int, what: str) -> torch.Tensor:
    if x.shape[0] == b:
        return x
    if x.shape[0] == 1:
        return x.expand(b, *x.shape[1:]).clone()
    raise ValueError(f"{what} has batch {x.shape[0]} but the latent has batch {b}")


def show_warning(text: str, node_id=None) -> None:
    """A warning in the log and, inside a running ComfyUI, as the node's progress text in the UI."""
    logging.getLogger("ccl").warning("CCL: %s", text)
    try:
        from server import PromptServer
        PromptServer.instance.send_progress_text(text, node_id)
    except Exception:  # outside a server (tests, scripts) or a ComfyUI without progress text: the log has it
        pass


def check_interrupt() -> None:
    import comfy.model_management
    comfy.model_management.throw_exception_if_processing_interrupted()
