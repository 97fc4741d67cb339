"""Joint latents: make an empty one sized from the model, split it for native VAE nodes, join two back."""

from __future__ import annotations

import torch

import comfy.model_management

from .api import io
from .joint import CCL_KEY, fit_batch, held_streams, latent_spec, make_joint_latent, spec_of, to_model_space, to_vae_space
from .runtime import CATEGORY, show_warning


FAR_BEYOND_COST = 4.0  # a step costing more than this many native steps gets a warning
REFUSED_COST = 1000.0  # ... and more than this is refused: one step would hold the server for hours


class CCLEmptyJointLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLEmptyJointLatent",
            display_name="CCL Empty Joint Latent",
            category=f"{CATEGORY}/latent",
            description=("An empty joint audio-video latent for a CCL / Ovi model. The video and the audio latent "
                         "cover the same duration at the model's own rates, so picture and sound stay aligned; "
                         "the frame rate is the model's (Ovi: 24 fps) and is given out for CreateVideo / CCL Save "
                         "Video."),
            inputs=[
                io.Model.Input("model", tooltip="The CCL / Ovi model: its latent rates and channels size the latent."),
                io.Int.Input("width", default=0, min=0, max=4096, step=16, tooltip=(
                    "Video width in pixels, rounded down to a multiple of the model's latent cell (Ovi: 32 px); "
                    "0: the model's native width (Ovi 720, ToyAV 64).")),
                io.Int.Input("height", default=0, min=0, max=4096, step=16,
                             tooltip="Video height in pixels, rounded down like the width; 0: the model's native height."),
                io.Float.Input("seconds", default=0.0, min=0.0, max=60.0, step=0.1, tooltip=(
                    "Clip duration in seconds; sets both the frame count and the audio length. 0: the model's "
                    "native duration (Ovi 5 s, or 10 s for its 10 s file; ToyAV 2 s).")),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Number of clips generated together."),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="Joint latent (video and audio) for the sampler."),
                io.Float.Output(display_name="fps", tooltip="Frame rate of the decoded video (the model's)."),
                io.Int.Output(display_name="frames", tooltip="Number of video frames after decoding."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, width=0, height=0, seconds=0.0, batch_size=1):
        spec = spec_of(model)
        seconds, width, height = spec.native(seconds, width, height)
        cost = spec.cost_vs_native(seconds, width, height)
        if cost is not None and cost > REFUSED_COST:
            raise ValueError(f"{width}x{height}, {seconds:g} s is refused for {spec.name or 'this model'} (trained on "
                             f"{spec.native_width}x{spec.native_height}, {spec.native_seconds:g} s): one sampling step "
                             f"would cost about {cost:.0f}x a native one (at most {REFUSED_COST:.0f}x is allowed); "
                             "lower width, height or seconds, or set them to 0 for the native size")
        if cost is not None and (cost > FAR_BEYOND_COST or seconds > 2 * spec.native_seconds):
            show_warning(f"{width}x{height}, {seconds:g} s is far beyond what {spec.name or 'this model'} "
                         f"was trained on ({spec.native_width}x{spec.native_height}, {spec.native_seconds:g} s): "
                         f"one sampling step costs about {cost:.0f}x a native one and the result may be poor; set "
                         "width, height and seconds to 0 for the native size", getattr(cls.hidden, "unique_id", None))
        t, h, w, length, frames, _, _ = spec.sizes(seconds, width, height)
        device = comfy.model_management.intermediate_device()
        video = torch.zeros(batch_size, spec.video_channels, t, h, w, device=device)
        audio = torch.zeros(batch_size, spec.audio_channels, length, device=device)
        return io.NodeOutput(make_joint_latent(video, audio, spec), float(spec.fps), int(frames))


class CCLSplitLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLSplitLatent",
            display_name="CCL Split Latent",
            category=f"{CATEGORY}/latent",
            description=("Splits a joint latent into a video LATENT and an audio LATENT (type 'audio') in the "
                         "VAEs' raw space, for native VAE Decode and VAE Decode Audio (Ovi: Wan 2.2 VAE, MMAudio "
                         "VAE)."),
            inputs=[io.Latent.Input("latent", tooltip="Joint latent from the sampler.")],
            outputs=[
                io.Latent.Output(display_name="video", tooltip="Video latent [B, C, T, H, W] for VAE Decode."),
                io.Latent.Output(display_name="audio", tooltip="Audio latent [B, C, L] for VAE Decode Audio."),
            ],
        )

    @classmethod
    def execute(cls, latent):
        video, audio = held_streams(latent, "CCL Split Latent")
        spec = latent_spec(latent) if CCL_KEY in latent else None
        if spec is not None:
            video = to_vae_space(spec.video_space, video)
            audio = to_vae_space(spec.audio_space, audio)
        return io.NodeOutput({"samples": video}, {"samples": audio, "type": "audio"})


class CCLJoinLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLJoinLatents",
            display_name="CCL Join Latents",
            category=f"{CATEGORY}/latent",
            description=("Joins a video LATENT and an audio LATENT (raw VAE space, e.g. from VAE Encode and VAE "
                         "Encode Audio) into a joint latent for this model. Lengths must cover the same duration."),
            inputs=[
                io.Model.Input("model", tooltip="The CCL / Ovi model the latent is for (its latent spaces and rates)."),
                io.Latent.Input("video", tooltip="Video latent [B, C, T, H, W] in the video VAE's raw space."),
                io.Latent.Input("audio", tooltip="Audio latent [B, C, L] in the audio VAE's raw space."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="Joint latent in the model's space.")],
        )

    @classmethod
    def execute(cls, model, video, audio):
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
        if v.shape[0] != a.shape[0] and 1 not in (v.shape[0], a.shape[0]):
            raise ValueError(f"video batch {v.shape[0]} and audio batch {a.shape[0]} differ; give both the same "
                             "batch, or one of them batch 1 (it is repeated)")
        b = max(v.shape[0], a.shape[0])
        v, a = fit_batch(v, b, "the video latent"), fit_batch(a, b, "the audio latent")
        dv, da = v.shape[2] / spec.video_latent_fps, a.shape[2] / spec.audio_latent_rate
        if abs(dv - da) > 1 / spec.video_latent_fps + 1 / spec.audio_latent_rate:
            raise ValueError(f"video covers {dv:.2f} s ({v.shape[2]} latent frames) but audio {da:.2f} s "
                             f"({a.shape[2]} latents); trim them to the same duration")
        v = to_model_space(spec.video_space, v.float())
        a = to_model_space(spec.audio_space, a.float())
        return io.NodeOutput(make_joint_latent(v.contiguous(), a.contiguous(), spec))


NODES = [CCLEmptyJointLatent, CCLSplitLatent, CCLJoinLatents]
