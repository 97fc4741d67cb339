"""Muxing: IMAGE + AUDIO -> native VIDEO, and an output node writing mp4 (H.264 + AAC, faststart).

Both make the inputs safe for an H.264 mp4 first: frames padded to even width and height (libx264
with yuv420p refuses odd sizes), the first clip of a batched AUDIO, at most two channels, on the CPU,
trimmed or padded with silence to the video's duration.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction

import torch
import torch.nn.functional as F

import comfy.utils
import folder_paths

from ..ccl_core.media import fit_length, write_mp4
from .api import InputImpl, Types, io, ui
from .runtime import CATEGORY, check_interrupt

log = logging.getLogger("ccl")


def frame_rate(fps) -> Fraction:
    fps = float(fps)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return Fraction(round(fps * 1000), 1000)


def even_frames(images: torch.Tensor) -> torch.Tensor:
    """[F, H, W, C] float 0..1 -> [F, H', W', 3] with H', W' even (edge pixels repeated)."""
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ValueError(f"IMAGE must be [frames, H, W, C], got {list(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("no frames to write")
    c = images.shape[-1]
    images = images[..., :3] if c >= 3 else images[..., :1].expand(*images.shape[:-1], 3)
    h, w = images.shape[1:3]
    ph, pw = h % 2, w % 2
    if ph or pw:
        images = F.pad(images.movedim(-1, 1).float(), (0, pw, 0, ph), mode="replicate").movedim(1, -1)
    return images.float().clamp(0, 1).cpu().contiguous()


def fit_audio(audio, frames: int, rate: Fraction):
    """AUDIO -> {"waveform": [1, C<=2, S], "sample_rate"} covering exactly frames / rate seconds."""
    if audio is None:
        return None
    wave, sr = audio["waveform"], int(audio["sample_rate"])
    if wave.ndim == 2:
        wave = wave.unsqueeze(0)
    if wave.ndim != 3:
        raise ValueError(f"AUDIO waveform must be [batch, channels, samples], got {list(wave.shape)}")
    if wave.shape[0] > 1:
        log.info("CCL: the audio has a batch of %d; the video gets the first one", wave.shape[0])
    wave = wave[:1, :2].float().cpu()
    wave = fit_length(wave, round(frames * sr / rate))
    return {"waveform": wave.contiguous(), "sample_rate": sr}


class CCLCreateVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLCreateVideo",
            display_name="CCL Create Video",
            category=f"{CATEGORY}/video",
            description=("Makes a native VIDEO from frames, a soundtrack and a frame rate, ready for SaveVideo or "
                         "CCL Save Video: odd sizes are padded to even, the audio fitted to the video's duration."),
            inputs=[
                io.Image.Input("images", tooltip="Video frames [frames, H, W, 3]."),
                io.Float.Input("fps", default=24.0, min=1.0, max=240.0, step=0.001, tooltip=(
                    "Frame rate (connect the fps output of CCL Decode or CCL Empty Joint Latent).")),
                io.Audio.Input("audio", optional=True, tooltip="Soundtrack; the first clip of a batch is used."),
            ],
            outputs=[io.Video.Output(display_name="video", tooltip="Video with its soundtrack.")],
        )

    @classmethod
    def execute(cls, images, fps, audio=None):
        rate = frame_rate(fps)
        images = even_frames(images)
        return io.NodeOutput(InputImpl.VideoFromComponents(Types.VideoComponents(
            images=images, audio=fit_audio(audio, images.shape[0], rate), frame_rate=rate)))


def unique_path(folder: str, filename: str, counter: int, ext: str = "mp4"):
    while True:
        name = f"{filename}_{counter:05}_.{ext}"
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            return path, name
        counter += 1


def _metadata_enabled() -> bool:
    try:
        from comfy.cli_args import args
        return not getattr(args, "disable_metadata", False)
    except ImportError:
        return True


class CCLSaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLSaveVideo",
            display_name="CCL Save Video (mp4)",
            category=f"{CATEGORY}/video",
            description=("Saves a VIDEO as mp4 (H.264 + AAC, index at the front for streaming) in ComfyUI's output "
                         "folder with a numbered name that never overwrites, and shows it in the UI. The workflow "
                         "is stored in the file's metadata, like SaveVideo. The same video and workflow give the "
                         "same file, byte for byte."),
            inputs=[
                io.Video.Input("video", tooltip="Video to save (from CCL Create Video, CreateVideo or Load Video)."),
                io.String.Input("filename_prefix", default="video/CCL", tooltip=(
                    "File name prefix; may contain a subfolder (video/CCL) and %date:yyyy-MM-dd% style fields.")),
                io.Int.Input("crf", default=19, min=0, max=51, tooltip=(
                    "H.264 quality: lower is better and larger (0 lossless, 19 visually clean, 28 small).")),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video, filename_prefix="video/CCL", crf=19):
        comp = video.get_components()
        rate = Fraction(comp.frame_rate).limit_denominator(1_000_000)
        images = even_frames(comp.images)
        audio = fit_audio(comp.audio, images.shape[0], rate)
        out_dir = folder_paths.get_output_directory()
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, out_dir, images.shape[2], images.shape[1])
        path, name = unique_path(folder, filename, counter)
        meta = {}
        if _metadata_enabled():
            prompt, extra_pnginfo = _hidden(cls, "prompt"), _hidden(cls, "extra_pnginfo")
            if prompt is not None:
                meta["prompt"] = prompt
            for k, v in (extra_pnginfo or {}).items():
                meta[k] = v
        pbar = comfy.utils.ProgressBar(images.shape[0])

        def on_frame():
            check_interrupt()
            pbar.update(1)

        waveform, sample_rate = (audio["waveform"][0], audio["sample_rate"]) if audio is not None else (None, None)
        # Another writer (a second prompt, another tool) may take this name while we encode: then the
        # next free number is used, never an overwrite.
        path = write_mp4(path, images, rate, waveform, sample_rate, crf=crf, metadata=meta, on_frame=on_frame,
                         next_free=lambda k: unique_path(folder, filename, counter + k)[0])
        name = os.path.basename(path)
        return io.NodeOutput(ui=ui.PreviewVideo([ui.SavedResult(name, subfolder, io.FolderType.output)]))


def _hidden(cls, name):
    """A hidden input ComfyUI filled in for this run (None when the node runs outside ComfyUI's executor)."""
    return getattr(cls.hidden, name, None)


NODES = [CCLCreateVideo, CCLSaveVideo]
