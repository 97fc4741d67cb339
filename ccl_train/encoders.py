"""The encoders that turn clips into training latents, behind one small interface.

`ClipEncoders` says what a clip must look like (duration, frame rate, size, sample rate) and encodes
a batch of frames, waveforms and captions. `identity()` names the encoders and their weights; the
latent cache records it and training refuses a cache whose identity differs (cache.py).

- `ToyAVEncoders`: the ToyAV video / audio autoencoders and text encoder (ccl_core/toyav).
- `OviEncoders`: the Ovi workflow's encoders. The Wan 2.2 VAE comes from diffusers
  (`AutoencoderKLWan`), umT5-XXL from transformers (`UMT5EncoderModel` + its tokenizer); both are
  optional imports. MMAudio's 16 kHz audio VAE is in no pip library (it lives in the MMAudio
  repository), so it is a hook: pass `audio_encoder`, a callable `wave [B, S] at 16 kHz -> latent
  [B, 20, L]` with an `identity` string. No encoder is written here by hand.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, List, Optional, Sequence, Tuple

import torch


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 (first 16 hex digits) of a module's state dict: names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{list(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


class ClipEncoders:
    """Interface: the clip format the encoders take, and batch encoding into latents."""

    fps: float  # video frames per second the clip is resampled to
    frames: int  # frames per clip (duration = frames / fps)
    height: int
    width: int
    sample_rate: int
    video_latent_fps: float  # must equal the model's ModelConfig.video_latent_fps
    audio_latent_rate: float  # must equal ModelConfig.audio_latent_rate

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def samples(self) -> int:
        return round(self.seconds * self.sample_rate)

    def identity(self) -> dict:
        raise NotImplementedError

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, H, W, 3] in 0..1 -> [B, C, T', H', W']."""
        raise NotImplementedError

    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, S] mono at sample_rate -> [B, C, L]."""
        raise NotImplementedError

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        """Captions -> [B, Lt, D], zero past each caption's tokens (the Wan / Ovi convention)."""
        raise NotImplementedError

    def null_text(self) -> torch.Tensor:
        """The empty prompt's embedding [1, Lt, D] (text dropout's null text)."""
        return self.encode_text([""])


class ToyAVEncoders(ClipEncoders):
    """The ToyAV parts: 2 s clips, 16 fps, 64 x 64, 16 kHz (the shipped files unless given)."""

    def __init__(self, video_ae=None, audio_ae=None, text_encoder=None, device="cpu"):
        from ccl_core.toyav import clip
        from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
        from ccl_core.toyav.text import load_text_encoder

        self.video_ae = video_ae if video_ae is not None else load_video_ae(device=device)
        self.audio_ae = audio_ae if audio_ae is not None else load_audio_ae(device=device)
        self.text = text_encoder if text_encoder is not None else load_text_encoder(device=device)
        self.device = torch.device(device)
        self.fps, self.frames = float(self.video_ae.fps), clip.NUM_FRAMES
        self.height = self.width = clip.FRAME_SIZE
        self.sample_rate = int(self.audio_ae.sample_rate)
        self.video_latent_fps = float(self.video_ae.video_latent_fps)
        self.audio_latent_rate = float(self.audio_ae.audio_latent_rate)

    def identity(self) -> dict:
        return {"video": f"toyav-video-ae:{weights_digest(self.video_ae)}",
                "audio": f"toyav-audio-ae:{weights_digest(self.audio_ae)}",
                "text": f"toyav-text:{weights_digest(self.text)}"}

    @torch.no_grad()
    def encode_video(self, frames):
        return self.video_ae.encode(frames.to(self.device)).cpu()

    @torch.no_grad()
    def encode_audio(self, wave):
        return self.audio_ae.encode(wave.to(self.device), self.sample_rate).cpu()

    @torch.no_grad()
    def encode_text(self, captions):
        return self.text.encode(list(captions))[0].cpu()


def _optional(module: str, what: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs the '{module}' package, which is not installed: pip install {module} "
                          f"(it is optional; the ToyAV encoders need nothing extra)") from None


class OviEncoders(ClipEncoders):
    """Wan 2.2 VAE (diffusers) + umT5-XXL (transformers) + an MMAudio VAE hook: Ovi's 5 s, 24 fps clips.

    wan_vae / umt5: a diffusers / transformers model id or local directory (e.g.
    Wan-AI/Wan2.2-TI2V-5B-Diffusers with vae_subfolder "vae", and google/umt5-xxl), or an already
    loaded model (then pass the tokenizer too). Latents are normalised as diffusers' Wan pipelines do, (z - latents_mean) /
    latents_std per channel, from the VAE's config. Not run at real scale in this repository.
    """

    def __init__(self, wan_vae, umt5, audio_encoder: Optional[Callable] = None, tokenizer=None, vae_subfolder="vae",
                 device="cpu", dtype=torch.bfloat16, fps: float = 24.0, frames: int = 121,
                 size: Tuple[int, int] = (720, 720), text_len: int = 512, audio_latent_rate: float = 31.25):
        if audio_encoder is None or not getattr(audio_encoder, "identity", None):
            raise ValueError("MMAudio's 16 kHz audio VAE is in no pip library, so it is not bundled: pass "
                             "audio_encoder, a callable wave [B, S] at 16 kHz -> latent [B, 20, L] with an "
                             "`identity` string attribute (for example a wrapper around the MMAudio repository's "
                             "VAE); see docs/TRAINING.md")
        diffusers = _optional("diffusers", "the Wan 2.2 VAE")
        transformers = _optional("transformers", "the umT5 text encoder")
        self.device, self.dtype = torch.device(device), dtype
        self.vae = wan_vae if isinstance(wan_vae, torch.nn.Module) else \
            diffusers.AutoencoderKLWan.from_pretrained(wan_vae, subfolder=vae_subfolder, torch_dtype=torch.float32)
        self.vae = self.vae.to(self.device).eval().requires_grad_(False)
        if isinstance(umt5, torch.nn.Module):
            if tokenizer is None:
                raise ValueError("a loaded umT5 model needs its tokenizer: pass tokenizer=")
            self.umt5 = umt5
        else:
            self.umt5 = transformers.UMT5EncoderModel.from_pretrained(umt5, torch_dtype=dtype)
            tokenizer = tokenizer or transformers.AutoTokenizer.from_pretrained(umt5)
        self.umt5 = self.umt5.to(self.device).eval().requires_grad_(False)
        self.tokenizer, self.text_len = tokenizer, int(text_len)
        self.audio_encoder = audio_encoder
        self.fps, self.frames = float(fps), int(frames)
        self.height, self.width = size
        self.sample_rate = 16_000
        scale = int(getattr(self.vae.config, "scale_factor_temporal", 4))
        self.video_latent_fps = self.fps / scale
        self.audio_latent_rate = float(audio_latent_rate)

    def identity(self) -> dict:
        def hf(model):
            cfg = model.config
            name = getattr(cfg, "_name_or_path", None) or getattr(model, "name_or_path", "")
            digest = hashlib.sha256(json.dumps(dict(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16] \
                if hasattr(cfg, "keys") else hashlib.sha256(cfg.to_json_string().encode()).hexdigest()[:16]
            return f"{type(model).__name__}:{name}:{getattr(cfg, '_commit_hash', None) or digest}"
        return {"video": hf(self.vae), "audio": str(self.audio_encoder.identity), "text": hf(self.umt5)}

    @torch.no_grad()
    def encode_video(self, frames):
        x = frames.permute(0, 4, 1, 2, 3).to(self.device, torch.float32) * 2 - 1  # [B, 3, T, H, W] in -1..1
        z = self.vae.encode(x).latent_dist.mode()
        mean = torch.tensor(self.vae.config.latents_mean, device=z.device).view(1, -1, 1, 1, 1)
        std = torch.tensor(self.vae.config.latents_std, device=z.device).view(1, -1, 1, 1, 1)
        return ((z - mean) / std).float().cpu()

    @torch.no_grad()
    def encode_audio(self, wave):
        return torch.as_tensor(self.audio_encoder(wave.to(self.device))).float().cpu()

    @torch.no_grad()
    def encode_text(self, captions: List[str]):
        tok = self.tokenizer(list(captions), padding="max_length", max_length=self.text_len, truncation=True,
                             add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        mask = tok.attention_mask.to(self.device)
        out = self.umt5(tok.input_ids.to(self.device), mask).last_hidden_state
        return (out * mask[..., None].to(out.dtype)).float().cpu()
