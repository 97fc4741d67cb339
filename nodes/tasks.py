"""Task nodes (DCR routes): audio-to-video, video-to-audio, video only, audio only.

Each node writes the task (and the clean conditioning latent of a2v / v2a) into the CONDITIONING
dicts, where the model adapter reads them (comfy_model.py), and sets a packed noise mask on the
joint latent that keeps the conditioning (or absent) stream out of the sampler's updates. So the
native sampler nodes need no change: connect the node's outputs where the plain ones went.
"""

from __future__ import annotations

import math

import torch

from .api import io
from .common import (CATEGORY, CCL_KEY, fit_batch, fit_length, latent_spec, nested, null_text_like,
                     split_joint, to_model_space)


def with_task(conditioning, task, clean=None):
    """Copy of a CONDITIONING list with our keys set on every entry."""
    out = []
    for t, d in conditioning:
        d = dict(d)
        d["ccl_task"] = task
        for k in ("ccl_clean_video", "ccl_clean_audio"):
            d.pop(k, None)
        for name, x in (clean or {}).items():
            d[f"ccl_clean_{name}"] = x
        out.append([t, d])
    return out


def apply_task(positive, negative, latent, task, clean=None):
    if not positive:
        raise ValueError("positive conditioning is empty")
    video, audio = split_joint(latent, f"the {task} task node")
    spec = latent_spec(latent)
    clean = dict(clean or {})
    if "video" in clean:
        video = clean["video"] = fit_batch(clean["video"].to(video), video.shape[0], "the clean video latent")
    if "audio" in clean:
        audio = clean["audio"] = fit_batch(clean["audio"].to(audio), audio.shape[0], "the clean audio latent")
    # No noise_mask: the model holds the stream the task does not generate (comfy_model.CCLDualStream),
    # which reads the same on every ComfyUI; a mask over a joint latent does not (0.12 takes a flat one
    # as the video's alone).
    out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", CCL_KEY)}
    meta = dict(latent.get(CCL_KEY, {}))
    meta.update(spec=spec.to_dict(), task=task, clean=clean)
    out.update(samples=nested((video, audio)))
    out[CCL_KEY] = meta
    neg = null_text_like(positive, spec) if negative is None else negative
    return with_task(positive, task, clean), with_task(neg, task, clean), out


def cond_inputs():
    """The inputs every task node starts with (fresh objects for each schema)."""
    return [io.Conditioning.Input("positive", tooltip="Text conditioning of the prompt."),
            io.Latent.Input("latent", tooltip="Joint latent from 'CCL Empty Joint Latent'.")]


def negative_input():
    """The optional negative, the last input of every task node."""
    return io.Conditioning.Input("negative", optional=True, tooltip=(
        "Optional negative prompt. When left empty the negative output is the null text, UCG's unconditional "
        "text (zeros for Ovi; the empty prompt's encoding for the embedded ToyAV model)."))


def task_outputs():
    return [io.Conditioning.Output(display_name="positive", tooltip="Positive conditioning carrying the task."),
            io.Conditioning.Output(display_name="negative", tooltip="Negative conditioning carrying the task."),
            io.Latent.Output(display_name="latent", tooltip=(
                "Joint latent with the conditioning stream filled in and held by a noise mask."))]


def task_schema(node_id, display_name, description, inputs):
    return io.Schema(node_id=node_id, display_name=display_name, category=f"{CATEGORY}/tasks",
                     description=description, inputs=cond_inputs() + inputs + [negative_input()],
                     outputs=task_outputs())


def _channels_for(vae):
    for attr in ("audio_channels", "output_channels"):
        n = getattr(vae, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def encode_audio(vae, audio: dict, spec, length: int) -> torch.Tensor:
    """AUDIO -> clean audio latent [B, C, length] in the model's space (resample, channels, duration)."""
    import torchaudio

    wave, sr = audio["waveform"], int(audio["sample_rate"])
    if wave.ndim == 2:
        wave = wave.unsqueeze(0)
    wave = wave.float().cpu()
    target_sr = int(getattr(vae, "audio_sample_rate", None) or 44100)  # ComfyUI's audio VAEs take 44.1 kHz
    if sr != target_sr:
        wave = torchaudio.functional.resample(wave, sr, target_sr)
    want = _channels_for(vae)
    if want == 1 and wave.shape[1] > 1:
        wave = wave.mean(1, keepdim=True)
    elif want == 2 and wave.shape[1] == 1:
        wave = wave.repeat(1, 2, 1)
    elif want == 2 and wave.shape[1] > 2:
        wave = wave[:, :2]
    samples = math.ceil(length / spec.audio_latent_rate * target_sr)
    if wave.shape[-1] >= samples:
        wave = wave[..., :samples]
    else:  # silence after the end of the given audio
        wave = torch.nn.functional.pad(wave, (0, samples - wave.shape[-1]))
    lat = vae.encode(wave.movedim(1, -1))
    if lat.ndim != 3 or lat.shape[1] != spec.audio_channels:
        raise ValueError(f"the audio VAE gave a latent {list(lat.shape)}; this model needs [B, "
                         f"{spec.audio_channels}, L] (Ovi: the MMAudio VAE)")
    lat = to_model_space(spec.audio_space, lat.float())
    return fit_length(lat, length, dim=2)


def encode_video(vae, images: torch.Tensor, fps: float, spec, shape) -> torch.Tensor:
    """IMAGE frames at `fps` -> clean video latent with the joint latent's shape [B, C, T, h, w]."""
    import comfy.utils

    _, _, t, h, w = shape
    frames = spec.pixel_frames(t)
    height, width = h * spec.spatial_factor, w * spec.spatial_factor
    if images.ndim != 4:
        raise ValueError(f"IMAGE must be [frames, H, W, C], got {list(images.shape)}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    # the frame shown at each model frame instant k / spec.fps (nearest earlier source frame)
    idx = torch.clamp((torch.arange(frames, dtype=torch.float64) * fps / spec.fps + 1e-6).floor().long(),
                      max=images.shape[0] - 1)
    pix = images[idx][..., :3].float()
    if pix.shape[1:3] != (height, width):
        pix = comfy.utils.common_upscale(pix.movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1)
    lat = vae.encode(pix)
    if lat.ndim == 4:  # an image VAE: one latent per frame
        lat = lat.movedim(0, 1).unsqueeze(0)
    if lat.ndim != 5 or lat.shape[1] != spec.video_channels:
        raise ValueError(f"the video VAE gave a latent {list(lat.shape)}; this model needs [B, "
                         f"{spec.video_channels}, T, H, W] (Ovi: the Wan 2.2 VAE)")
    lat = to_model_space(spec.video_space, lat.float())
    return fit_length(lat, t, dim=2)


class CCLAudioToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return task_schema(
            "CCLAudioToVideo", "CCL Task: Audio to Video",
            "Audio-to-video (a2v): the given sound is the clean audio stream the video is generated for. Encodes "
            "the AUDIO with the audio VAE (resampled, trimmed or padded with silence to the latent's duration), "
            "holds it fixed during sampling and routes the model's a2v task.",
            [io.Vae.Input("audio_vae", tooltip="Audio VAE of the model (Ovi: MMAudio 16 kHz)."),
             io.Audio.Input("audio", tooltip="The soundtrack to make a video for.")])

    @classmethod
    def execute(cls, positive, latent, audio_vae, audio, negative=None):
        _, a = split_joint(latent, "CCL Audio to Video")
        spec = latent_spec(latent)
        clean = encode_audio(audio_vae, audio, spec, a.shape[2])
        clean = fit_batch(clean, a.shape[0], "the audio")
        return io.NodeOutput(*apply_task(positive, negative, latent, "a2v", {"audio": clean}))


class CCLVideoToAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return task_schema(
            "CCLVideoToAudio", "CCL Task: Video to Audio",
            "Video-to-audio (v2a): the given frames are the clean video stream the sound is generated for. "
            "Encodes the IMAGE frames with the video VAE (resampled in time to the model's fps, resized to the "
            "latent's size, trimmed or padded), holds them fixed and routes v2a.",
            [io.Vae.Input("video_vae", tooltip="Video VAE of the model (Ovi: Wan 2.2 VAE)."),
             io.Image.Input("images", tooltip="The video frames to make a soundtrack for."),
             io.Float.Input("fps", default=24.0, min=1.0, max=240.0, step=0.001,
                            tooltip="Frame rate of the given frames.")])

    @classmethod
    def execute(cls, positive, latent, video_vae, images, fps, negative=None):
        v, _ = split_joint(latent, "CCL Video to Audio")
        spec = latent_spec(latent)
        clean = encode_video(video_vae, images, fps, spec, v.shape)
        clean = fit_batch(clean, v.shape[0], "the video")
        return io.NodeOutput(*apply_task(positive, negative, latent, "v2a", {"video": clean}))


class CCLVideoOnly(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return task_schema(
            "CCLVideoOnly", "CCL Task: Video Only",
            "Text-to-video only (t2v): the audio stream is absent; the video reads only the context tokens and the "
            "audio tower is not run. Decoding gives silence.", [])

    @classmethod
    def execute(cls, positive, latent, negative=None):
        return io.NodeOutput(*apply_task(positive, negative, latent, "t2v"))


class CCLAudioOnly(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return task_schema(
            "CCLAudioOnly", "CCL Task: Audio Only",
            "Text-to-audio only (t2a): the video stream is absent; the audio reads only the context tokens and the "
            "video tower is not run. Decoding gives black frames.", [])

    @classmethod
    def execute(cls, positive, latent, negative=None):
        return io.NodeOutput(*apply_task(positive, negative, latent, "t2a"))


NODES = [CCLAudioToVideo, CCLVideoToAudio, CCLVideoOnly, CCLAudioOnly]
