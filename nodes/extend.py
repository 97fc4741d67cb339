"""Longer clips in windows: CCL Extend makes the next window of a clip, CCL Append Window joins it on;
CCL Encode Video+Audio turns a VIDEO with sound into a joint latent that CCL Extend can continue.

A chain reads: window 1 (any task) -> sampler -> CCL Extend -> sampler -> CCL Append Window (clip, window)
-> CCL Extend -> sampler -> CCL Append Window -> ... Each window starts `overlap` before the clip so far
ends; that overlap (the clip's last latent frames and its sound from the same instant) is the window's
clean prefix, task "extend", held by the model at the clip's values (ccl_core.extension). The window's
latent records what it continues, so Append can join it once, in the right place, and refuse a window
that continues another clip.
"""

from __future__ import annotations

import math

import torch

from ..ccl_core import extension
from .api import io
from .joint import CCL_KEY, held_streams, latent_spec, make_joint_latent, spec_of
from .runtime import CATEGORY
from .tasks import apply_task, encode_audio, encode_video, negative_input, task_outputs

EXTEND_KEY = "extend"  # the window's record in the LATENT's CCL metadata


class CCLExtend(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLExtend",
            display_name="CCL Extend",
            category=f"{CATEGORY}/tasks",
            description=("The next window of a clip (task 'extend'): a joint latent of `seconds` that starts "
                         "`overlap_seconds` before the given clip ends. The overlap (the clip's last latent video "
                         "frames and its sound from the same instant) is held clean, so the window continues what "
                         "is there. Sample it like any joint latent, then join it to the clip with CCL Append "
                         "Window; chain Extend -> sampler -> Append for longer clips."),
            inputs=[
                io.Conditioning.Input("positive", tooltip="Text conditioning of the prompt for the new window."),
                io.Latent.Input("latent", tooltip=(
                    "The clip so far: a sampled joint latent, or the output of CCL Append Window.")),
                io.Float.Input("overlap_seconds", default=0.5, min=0.01, max=60.0, step=0.01, tooltip=(
                    "How much of the clip's end the window starts with (held clean), rounded to whole latent "
                    "frames of the model. Shorter than seconds.")),
                io.Float.Input("seconds", default=0.0, min=0.0, max=600.0, step=0.1, tooltip=(
                    "Length of the new window, overlap included; 0: the model's native clip length (ToyAV 2 s, "
                    "Ovi 5 s).")),
                negative_input(),
            ],
            outputs=task_outputs(),
        )

    @classmethod
    def execute(cls, positive, latent, overlap_seconds, seconds=0.0, negative=None):
        video, audio = held_streams(latent, "CCL Extend")
        spec = latent_spec(latent)
        seconds = seconds or spec.native_seconds
        if not seconds > 0:
            raise ValueError(f"CCL Extend: model {spec.name or '(unnamed)'} does not say its native clip length; "
                             "set seconds")
        if overlap_seconds >= seconds:
            raise ValueError(f"CCL Extend: the overlap ({overlap_seconds:g} s) must be shorter than the window "
                             f"({seconds:g} s); lower overlap_seconds or raise seconds")
        frames = extension.overlap_frames(overlap_seconds, spec.video_latent_fps, spec.video_patch[0])
        try:
            cont = extension.continuation(video, audio, frames, spec.video_latent_fps, spec.audio_latent_rate)
        except ValueError as e:
            raise ValueError(f"CCL Extend: {overlap_seconds:g} s of overlap is {frames} latent frames: {e}") from None
        b, cv, _, h, w = video.shape
        t, _, _, length, *_ = spec.sizes(seconds, w * spec.spatial_factor, h * spec.spatial_factor)
        try:
            v, a = extension.place(cont, video.new_zeros(b, cv, t, h, w), audio.new_zeros(b, audio.shape[1], length))
        except ValueError as e:
            raise ValueError(f"CCL Extend: {e}") from None
        record = {"overlap_frames": frames, "video_start": cont.video_start, "audio_start": cont.audio_start,
                  "clip_frames": video.shape[2], "clip_audio": audio.shape[2]}
        window = make_joint_latent(v, a, spec)
        return io.NodeOutput(*apply_task(positive, negative, window, "extend", {"video": v, "audio": a},
                                         prefix={"video": cont.video_prefix, "audio": cont.audio_prefix},
                                         extra={EXTEND_KEY: record}))


class CCLAppendWindow(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLAppendWindow",
            display_name="CCL Append Window",
            category=f"{CATEGORY}/latent",
            description=("Joins a sampled window from CCL Extend onto the clip it continues: the clip up to where "
                         "the window starts, then the whole window (its overlap equals the clip's end, so it is "
                         "taken once). The result is the longer clip, for CCL Decode or the next CCL Extend."),
            inputs=[
                io.Latent.Input("clip", tooltip="The clip that went into CCL Extend (the same latent)."),
                io.Latent.Input("window", tooltip="The window: CCL Extend's latent after the sampler."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The clip continued by the window.")],
        )

    @classmethod
    def execute(cls, clip, window):
        cv, ca = held_streams(clip, "CCL Append Window (clip)")
        wv, wa = held_streams(window, "CCL Append Window (window)")
        spec, wspec = latent_spec(clip), latent_spec(window)
        if spec.to_dict() != wspec.to_dict():
            raise ValueError(f"CCL Append Window: the window is a latent of another model ({wspec.name or 'unnamed'}) "
                             f"than the clip ({spec.name or 'unnamed'}); extend and sample the clip with one model")
        record = window.get(CCL_KEY, {}).get(EXTEND_KEY)
        if record is None:
            raise ValueError("CCL Append Window: the window was not made by CCL Extend; connect CCL Extend's latent, "
                             "after the sampler, to window")
        if (cv.shape[2], ca.shape[2]) != (record["clip_frames"], record["clip_audio"]) or \
                (cv.shape[0], *cv.shape[3:]) != (wv.shape[0], *wv.shape[3:]):
            raise ValueError(f"CCL Append Window: the window continues a clip of {record['clip_frames']} latent frames "
                             f"and {record['clip_audio']} audio latents, batch {wv.shape[0]}, {wv.shape[3]}x"
                             f"{wv.shape[4]}; the clip given has {cv.shape[2]} and {ca.shape[2]}, batch {cv.shape[0]}, "
                             f"{cv.shape[3]}x{cv.shape[4]}: connect the latent that went into CCL Extend")
        cont = extension.continuation(cv, ca, record["overlap_frames"], spec.video_latent_fps, spec.audio_latent_rate)
        same = (cont.video_start, cont.audio_start) == (record["video_start"], record["audio_start"]) and \
            torch.allclose(wv[:, :, :cont.video_prefix], cont.video.to(wv), atol=1e-5) and \
            torch.allclose(wa[:, :, :cont.audio_prefix], cont.audio.to(wa), atol=1e-5)
        if not same:
            raise ValueError("CCL Append Window: the window continues another clip of the same length (its overlap "
                             "differs from this clip's end); connect the latent that went into its CCL Extend")
        video, audio = extension.join(cv, ca, cont, wv, wa)
        return io.NodeOutput(make_joint_latent(video.contiguous(), audio.contiguous(), spec))


class CCLEncodeVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLEncodeVideo",
            display_name="CCL Encode Video+Audio",
            category=f"{CATEGORY}/latent",
            description=("Encodes a VIDEO with its soundtrack (Load Video, CreateVideo, CCL Create Video) into a "
                         "joint latent of the model, so CCL Extend can continue it. The frames are resampled to the "
                         "model's frame rate and resized (centre-cropped) to its size, the sound to its sample "
                         "rate; the video is trimmed to whole latent frames and the sound to the same duration."),
            inputs=[
                io.Model.Input("model", tooltip="The CCL / Ovi model the latent is for: its rates and sizes."),
                io.Video.Input("video", tooltip="The clip to continue, with a soundtrack."),
                io.Vae.Input("video_vae", tooltip=(
                    "Video VAE of the model (Ovi: Wan 2.2 VAE; the embedded ToyAV model: the ToyAV video "
                    "autoencoder).")),
                io.Vae.Input("audio_vae", tooltip=(
                    "Audio VAE of the model (Ovi: MMAudio; the embedded ToyAV model: the ToyAV audio autoencoder).")),
                io.Int.Input("width", default=0, min=0, max=4096, step=16, tooltip=(
                    "Width of the latent in pixels, rounded down to the model's latent cell; 0: the model's "
                    "native width (the video's own when the model does not say).")),
                io.Int.Input("height", default=0, min=0, max=4096, step=16,
                             tooltip="Height, rounded down like the width; 0: the model's native height."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip=(
                "The clip as a joint latent (batch 1), for CCL Extend (and CCL Append Window's clip) or CCL "
                "Decode."))],
        )

    @classmethod
    def execute(cls, model, video, video_vae, audio_vae, width=0, height=0):
        spec = spec_of(model)
        comp = video.get_components()
        images, audio = comp.images, comp.audio
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] == 0:
            got = list(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"CCL Encode Video+Audio: the video has no frames (images {got}); connect a video "
                             "with frames, e.g. from Load Video")
        if audio is None or audio.get("waveform") is None or audio["waveform"].shape[-1] == 0:
            raise ValueError("CCL Encode Video+Audio: the video has no audio; CCL Extend continues picture and "
                             "sound together, so add a soundtrack (CreateVideo / CCL Create Video with an AUDIO), "
                             "or use CCL Task: Video to Audio (frames only) or CCL Task: Audio to Video (sound "
                             "only) instead")
        fps = float(comp.frame_rate)
        if not fps > 0:
            raise ValueError(f"CCL Encode Video+Audio: the video's frame rate is {fps:g}; it must be > 0")
        seconds_in = images.shape[0] / fps
        # model frames whose whole frame interval lies inside the video, then whole latent frames (and patches)
        frames = math.floor(seconds_in * spec.fps + 1e-6)
        tf, pt = spec.temporal_factor, spec.video_patch[0]
        t = ((frames - 1) // tf + 1 if frames >= 1 else 0) if spec.causal else frames // tf
        t = t // pt * pt
        if t < 1:
            need = spec.pixel_frames(pt) / spec.fps
            raise ValueError(f"CCL Encode Video+Audio: the video lasts {seconds_in:.3g} s ({images.shape[0]} frames "
                             f"at {fps:g} fps), shorter than one latent frame of {spec.name or 'this model'} "
                             f"({need:.3g} s at {spec.fps:g} fps); give a longer video")
        seconds = (spec.pixel_frames(t) - (1 if spec.causal else 0)) / spec.fps
        width = width or spec.native_width or images.shape[2]
        height = height or spec.native_height or images.shape[1]
        t2, h, w, length, *_ = spec.sizes(seconds, width, height)
        if t2 != t:  # spec.sizes is what CCL Empty Joint Latent uses: the two must agree
            raise RuntimeError(f"CCL Encode Video+Audio: {seconds:g} s is {t2} latent frames, not {t}")
        wave = audio["waveform"]
        audio = {"waveform": wave[:1] if wave.ndim == 3 else wave, "sample_rate": audio["sample_rate"]}
        v = encode_video(video_vae, images, fps, spec, (1, spec.video_channels, t, h, w))
        a = encode_audio(audio_vae, audio, spec, length)
        return io.NodeOutput(make_joint_latent(v.contiguous(), a.contiguous(), spec))


NODES = [CCLExtend, CCLAppendWindow, CCLEncodeVideo]
