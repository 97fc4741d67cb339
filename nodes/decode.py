"""Decode a joint latent to IMAGE frames and AUDIO, with VAEs or as a rough preview without them.

The VAE inputs are ComfyUI VAE objects (VAELoader: Wan 2.2 VAE, MMAudio VAE) or anything with the
same `decode` contract: video latent [B, C, T, h, w] -> [B, F, H, W, C] (an image VAE,
`latent_dim == 2`, is run frame by frame), audio latent [B, C, L] -> [B, S, C]; an
`audio_sample_rate` attribute gives the rate of the decoded sound (44.1 kHz when absent, like
VAE Decode Audio). The embedded ToyAV autoencoders plug in through the same contract.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import comfy.utils

from ..ccl_core.media import fit_length
from .api import io
from .joint import CCL_KEY, held_streams, latent_spec, to_vae_space
from .runtime import CATEGORY, check_interrupt


def decode_video(vae, raw: torch.Tensor) -> torch.Tensor:
    """One clip's raw video latent [1, C, T, h, w] -> frames [F, H, W, 3]."""
    if getattr(vae, "latent_dim", 3) == 2:  # image VAE: frames are independent latents
        frames = raw[0].movedim(1, 0)  # [T, C, h, w]
        out = vae.decode(frames)
    else:
        out = vae.decode(raw)
        if out.ndim == 5:
            out = out[0]
    if out.ndim != 4:
        raise ValueError(f"the video VAE returned {list(out.shape)}; expected frames [F, H, W, C]")
    return out[..., :3].float().clamp(0, 1)


def decode_audio(vae, raw: torch.Tensor):
    """One clip's raw audio latent [1, C, L] -> (waveform [1, C, S], sample rate)."""
    out = vae.decode(raw)
    if out.ndim != 3:
        raise ValueError(f"the audio VAE returned {list(out.shape)}; expected [B, S, C]")
    return out.movedim(-1, 1).float(), int(getattr(vae, "audio_sample_rate", None) or 44100)


def decode_outputs(images_tip, audio_tip):
    """The outputs of the two decoders: frames, sound, frame rate."""
    return [io.Image.Output(display_name="images", tooltip=images_tip),
            io.Audio.Output(display_name="audio", tooltip=audio_tip),
            io.Float.Output(display_name="fps", tooltip="Frame rate of the video.")]


class CCLDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLDecode",
            display_name="CCL Decode",
            category=f"{CATEGORY}/decode",
            description=("Decodes a joint latent to video frames (IMAGE) and sound (AUDIO) with the model's VAEs "
                         "(Ovi: Wan 2.2 VAE and MMAudio VAE from VAELoader). The sound is trimmed or padded to the "
                         "video's duration; streams a task left out (t2v, t2a) decode to silence or black frames."),
            inputs=[
                io.Latent.Input("latent", tooltip="Joint latent from the sampler."),
                io.Vae.Input("video_vae", tooltip="Video VAE (Ovi: wan2.2_vae.safetensors)."),
                io.Vae.Input("audio_vae", tooltip="Audio VAE (Ovi: the MMAudio 16 kHz VAE)."),
            ],
            outputs=decode_outputs("Video frames of every clip, one after the other.",
                                   "Soundtrack [batch, channels, samples]."),
        )

    @classmethod
    def execute(cls, latent, video_vae, audio_vae):
        video, audio = held_streams(latent, "CCL Decode")
        spec = latent_spec(latent)
        task = latent.get(CCL_KEY, {}).get("task", "t2av")
        batch, t = video.shape[0], video.shape[2]
        frames = spec.pixel_frames(t)
        duration = frames / spec.fps
        pbar = comfy.utils.ProgressBar(2 * batch)
        images, waves, rate = [], [], None
        for b in range(batch):
            check_interrupt()
            if task == "t2a":
                h, w = video.shape[3] * spec.spatial_factor, video.shape[4] * spec.spatial_factor
                img = torch.zeros(frames, h, w, 3)
            else:
                img = decode_video(video_vae, to_vae_space(spec.video_space, video[b:b + 1]))
            images.append(img.cpu())
            pbar.update(1)
            check_interrupt()
            if task == "t2v":
                wave, sr = torch.zeros(1, 1, 1), rate or int(getattr(audio_vae, "audio_sample_rate", None) or 44100)
            else:
                wave, sr = decode_audio(audio_vae, to_vae_space(spec.audio_space, audio[b:b + 1]))
            rate = rate or sr
            waves.append(fit_length(wave.cpu(), round(duration * rate)))
            pbar.update(1)
        channels = max(w.shape[1] for w in waves)
        waves = [w.expand(-1, channels, -1) if w.shape[1] == 1 else w for w in waves]
        return io.NodeOutput(torch.cat(images), {"waveform": torch.cat(waves), "sample_rate": rate}, float(spec.fps))


class CCLLatentPreview(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLLatentPreview",
            display_name="CCL Latent Preview (no VAE)",
            category=f"{CATEGORY}/decode",
            description=("A rough look and listen without any VAE: latent channels projected to colours and "
                         "enlarged to the video size, and a waveform traced from the audio latent. For quick checks "
                         "and smoke tests only; it is not a decoder (use CCL Decode for real output)."),
            inputs=[io.Latent.Input("latent", tooltip="Joint latent from the sampler.")],
            outputs=decode_outputs("Preview frames.", "Preview sound (not speech or music: a trace of the latent)."),
        )

    @classmethod
    def execute(cls, latent):
        video, audio = held_streams(latent, "CCL Latent Preview")
        spec = latent_spec(latent)
        batch, _, t = video.shape[:3]
        frames = spec.pixel_frames(t)
        rate = int(spec.audio_sample_rate)
        samples = round(frames / spec.fps * rate)
        pbar = comfy.utils.ProgressBar(batch)
        images, waves = [], []
        for b in range(batch):
            check_interrupt()
            rgb = _to_rgb(video[b].float(), spec)  # [3, T, h, w]
            rgb = F.interpolate(rgb.unsqueeze(0), scale_factor=(1, spec.spatial_factor, spec.spatial_factor),
                                mode="nearest")[0]
            idx = torch.tensor([_latent_index(spec, k) for k in range(frames)]).clamp(max=t - 1)
            images.append(rgb[:, idx].permute(1, 2, 3, 0).contiguous())
            trace = audio[b].float().mean(0)
            trace = trace - trace.mean()
            trace = trace / trace.abs().max().clamp_min(1e-6) * 0.5
            wave = F.interpolate(trace.view(1, 1, -1), size=max(1, math.ceil(audio.shape[2] / spec.audio_latent_rate
                                                                              * rate)), mode="linear",
                                 align_corners=False)
            waves.append(fit_length(wave, samples, pad="repeat") if wave.shape[-1] else wave)
            pbar.update(1)
        return io.NodeOutput(torch.cat(images), {"waveform": torch.cat(waves), "sample_rate": rate}, float(spec.fps))


def _latent_index(spec, frame: int) -> int:
    if spec.causal:
        return 0 if frame == 0 else (frame - 1) // spec.temporal_factor + 1
    return frame // spec.temporal_factor


def _to_rgb(x: torch.Tensor, spec) -> torch.Tensor:
    """[C, T, h, w] -> [3, T, h, w] in 0..1."""
    if spec.video_space == "wan22" and x.shape[0] == 48:
        import comfy.latent_formats
        fmt = comfy.latent_formats.Wan22
        factors = getattr(fmt, "latent_rgb_factors", None)
        if factors is not None:
            m = torch.tensor(factors, dtype=x.dtype)  # [C, 3]
            bias = torch.tensor(getattr(fmt, "latent_rgb_factors_bias", None) or [0.0, 0.0, 0.0], dtype=x.dtype)
            rgb = torch.einsum("cthw,cr->rthw", x, m) + bias.view(3, 1, 1, 1)
            return ((rgb + 1) / 2).clamp(0, 1)
    rgb = x[:3] if x.shape[0] >= 3 else x[:1].expand(3, *x.shape[1:])
    lo, hi = rgb.amin(), rgb.amax()
    return ((rgb - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)


NODES = [CCLDecode, CCLLatentPreview]
