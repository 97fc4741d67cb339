"""Joint latents: make an empty one sized from the model, split it for native VAE nodes, join two back."""

from __future__ import annotations

import torch

import comfy.model_management

from .common import (CATEGORY, CCL_KEY, latent_spec, make_joint_latent, spec_of, split_joint, tip,
                     to_model_space, to_vae_space)


class CCLEmptyJointLatent:
    DESCRIPTION = ("An empty joint audio-video latent for a CCL / Ovi model. The video and the audio latent "
                   "cover the same duration at the model's own rates, so picture and sound stay aligned; the "
                   "frame rate is the model's (Ovi: 24 fps) and is given out for CreateVideo / CCL Save Video.")
    CATEGORY = f"{CATEGORY}/latent"
    RETURN_TYPES = ("LATENT", "FLOAT", "INT")
    RETURN_NAMES = ("latent", "fps", "frames")
    OUTPUT_TOOLTIPS = ("Joint latent (video and audio) for the sampler.",
                       "Frame rate of the decoded video (the model's).",
                       "Number of video frames after decoding.")
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", tip("The CCL / Ovi model: its latent rates and channels size the latent.")),
            "width": ("INT", tip("Video width in pixels; rounded down to a multiple of the model's latent cell "
                                 "(Ovi: 32 px).", default=704, min=16, max=4096, step=16)),
            "height": ("INT", tip("Video height in pixels; rounded down like the width.",
                                  default=704, min=16, max=4096, step=16)),
            "seconds": ("FLOAT", tip("Clip duration in seconds (Ovi was trained on 5 s, or 10 s for its 10 s "
                                     "file). Sets both the frame count and the audio length.",
                                     default=5.0, min=0.1, max=60.0, step=0.1)),
            "batch_size": ("INT", tip("Number of clips generated together.", default=1, min=1, max=64)),
        }}

    def make(self, model, width, height, seconds, batch_size=1):
        spec = spec_of(model)
        t, h, w, length, frames, _, _ = spec.sizes(seconds, width, height)
        device = comfy.model_management.intermediate_device()
        video = torch.zeros(batch_size, spec.video_channels, t, h, w, device=device)
        audio = torch.zeros(batch_size, spec.audio_channels, length, device=device)
        return (make_joint_latent(video, audio, spec), float(spec.fps), int(frames))


class CCLSplitLatent:
    DESCRIPTION = ("Splits a joint latent into a video LATENT and an audio LATENT (type 'audio') in the VAEs' "
                   "raw space, for native VAE Decode and VAE Decode Audio (Ovi: Wan 2.2 VAE, MMAudio VAE).")
    CATEGORY = f"{CATEGORY}/latent"
    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("video", "audio")
    OUTPUT_TOOLTIPS = ("Video latent [B, C, T, H, W] for VAE Decode.", "Audio latent [B, C, L] for VAE Decode Audio.")
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latent": ("LATENT", tip("Joint latent from the sampler."))}}

    def split(self, latent):
        video, audio = split_joint(latent, "CCL Split Latent")
        spec = latent_spec(latent) if CCL_KEY in latent else None
        meta = latent.get(CCL_KEY, {})
        video, audio = restore_held(video, audio, meta)
        if spec is not None:
            video = to_vae_space(spec.video_space, video)
            audio = to_vae_space(spec.audio_space, audio)
        return ({"samples": video}, {"samples": audio, "type": "audio"})


class CCLJoinLatents:
    DESCRIPTION = ("Joins a video LATENT and an audio LATENT (raw VAE space, e.g. from VAE Encode and VAE Encode "
                   "Audio) into a joint latent for this model. Lengths must cover the same duration.")
    CATEGORY = f"{CATEGORY}/latent"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("Joint latent in the model's space.",)
    FUNCTION = "join"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", tip("The CCL / Ovi model the latent is for (its latent spaces and rates).")),
            "video": ("LATENT", tip("Video latent [B, C, T, H, W] in the video VAE's raw space.")),
            "audio": ("LATENT", tip("Audio latent [B, C, L] in the audio VAE's raw space.")),
        }}

    def join(self, model, video, audio):
        spec = spec_of(model)
        v, a = video["samples"], audio["samples"]
        if getattr(v, "is_nested", False) or getattr(a, "is_nested", False):
            raise ValueError("CCL Join Latents takes two plain latents; this one is already joint")
        if v.ndim == 4:  # an image latent [B, C, H, W]: one latent frame
            v = v.unsqueeze(2)
        if v.ndim != 5 or v.shape[1] != spec.video_channels:
            raise ValueError(f"video latent must be [B, {spec.video_channels}, T, H, W], got {list(v.shape)}")
        if a.ndim != 3 or a.shape[1] != spec.audio_channels:
            raise ValueError(f"audio latent must be [B, {spec.audio_channels}, L], got {list(a.shape)}")
        if v.shape[0] != a.shape[0]:
            if a.shape[0] == 1:
                a = a.expand(v.shape[0], -1, -1)
            elif v.shape[0] == 1:
                v = v.expand(a.shape[0], -1, -1, -1, -1)
            else:
                raise ValueError(f"video batch {v.shape[0]} and audio batch {a.shape[0]} differ")
        dv, da = v.shape[2] / spec.video_latent_fps, a.shape[2] / spec.audio_latent_rate
        if abs(dv - da) > 1 / spec.video_latent_fps + 1 / spec.audio_latent_rate:
            raise ValueError(f"video covers {dv:.2f} s ({v.shape[2]} latent frames) but audio {da:.2f} s "
                             f"({a.shape[2]} latents); trim them to the same duration")
        v = to_model_space(spec.video_space, v.float())
        a = to_model_space(spec.audio_space, a.float())
        return (make_joint_latent(v.contiguous(), a.contiguous(), spec),)


def restore_held(video, audio, meta):
    """Put back the exact clean conditioning stream of a2v / v2a (the sampler returns it up to rounding)."""
    clean = meta.get("clean") or {}
    if "video" in clean and clean["video"].shape == video.shape:
        video = clean["video"].to(video)
    if "audio" in clean and clean["audio"].shape == audio.shape:
        audio = clean["audio"].to(audio)
    return video, audio


NODE_CLASS_MAPPINGS = {
    "CCLEmptyJointLatent": CCLEmptyJointLatent,
    "CCLSplitLatent": CCLSplitLatent,
    "CCLJoinLatents": CCLJoinLatents,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CCLEmptyJointLatent": "CCL Empty Joint Latent",
    "CCLSplitLatent": "CCL Split Latent",
    "CCLJoinLatents": "CCL Join Latents",
}
