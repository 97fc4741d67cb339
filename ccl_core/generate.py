"""Generation with a loaded pipeline: text-, image- and audio-to-video and video-to-audio, clips of
any length, and long clips made of windows that each continue the clip so far.

The command line (`python -m ccl_core generate ...`) and the benchmarks call `generate` and
`generate_long`; inside ComfyUI the native samplers drive the model instead.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .extension import Continuation, audio_index, continuation, overlap_frames, place
from .extension import join as join_latents
from .guidance import Guidance, guided_velocity
from .media import fit_length
from .routing import make_routes, prefix_mask
from .sampling import DEFAULT_METHOD, flow_sigmas, sample
from .toyav.embedded import GUIDANCE, SHIFT


# torch's CPU generator seeds its Mersenne Twister with the seed's low 32 bits only: seeds s and
# s + 2**32 give the same noise. Seeds are therefore taken in [0, 2**32), where each one is distinct.
SEED_RANGE = (0, 2**32 - 1)
STEPS_RANGE = (1, 1000)  # more steps than this change nothing a flow sampler can show, and take hours


def check_settings(seed: int = 0, steps: int = 25, shift: float = SHIFT) -> None:
    """Refuse a seed, step count or shift outside what generation can honour, naming the range."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ValueError(f"seed must be an integer in {SEED_RANGE[0]}..{SEED_RANGE[1]} (2**32 - 1; larger seeds "
                         f"would repeat the noise of smaller ones), got {seed}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not STEPS_RANGE[0] <= steps <= STEPS_RANGE[1]:
        raise ValueError(f"steps must be in {STEPS_RANGE[0]}..{STEPS_RANGE[1]}, got {steps}")
    if not (math.isfinite(shift) and shift > 0):
        raise ValueError(f"shift must be a finite number > 0, got {shift}")


GENERATE_TASKS = ("t2av", "i2av", "a2v", "v2a")
# A clip longer than this many native clips is refused: its attention grows with the square of the
# length and the model never saw anything like it.
MAX_NATIVE_CLIPS = 32


def _temporal_patch(pipe) -> int:
    return int(pipe.model.config.video_patch[0])


def clip_lengths(pipe, seconds: Optional[float] = None, limit: bool = True) -> Tuple[int, int]:
    """(latent video frames, audio latents) of a clip of `seconds` (None: the pipeline's native clip).

    The video is rounded to whole tokens (latent frames x the model's temporal patch), with a
    warning when that changes the length; the audio covers the same time, rounded to the nearest
    latent (extension.audio_index), as each window of a long clip does on the clip's timeline.
    `limit`: refuse more than MAX_NATIVE_CLIPS native clips (what one sampling run can take; a
    clip made in windows has no such limit)."""
    native = float(pipe.native_seconds)
    if seconds is None:
        seconds = native
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(seconds) \
            or seconds <= 0:
        raise ValueError(f"seconds must be a number > 0, got {seconds!r}")
    if limit and seconds > MAX_NATIVE_CLIPS * native:
        raise ValueError(f"seconds must be at most {MAX_NATIVE_CLIPS * native:g} ({MAX_NATIVE_CLIPS} native "
                         f"{native:g} s clips), got {seconds:g}; make a long clip in windows instead "
                         "(generate_long, or --window on the command line)")
    fps, patch = float(pipe.video_ae.video_latent_fps), _temporal_patch(pipe)
    frames = max(1, round(seconds * fps / patch)) * patch
    if abs(frames / fps - seconds) > 1e-6:
        warnings.warn(f"{seconds:g} s is not a whole number of latent video frames ({patch / fps:g} s each): "
                      f"the clip lasts {frames / fps:g} s", UserWarning, stacklevel=3)
    return frames, audio_index(frames, fps, float(pipe.audio_ae.audio_latent_rate))


def as_continuation(pipe, extend, overlap: Optional[float]) -> Continuation:
    """`extend` as the clean prefix of the window that continues it: a Continuation as it is, or
    (video latent, audio latent) of a clip continued from its last `overlap` seconds."""
    if isinstance(extend, Continuation):
        if overlap is not None:
            raise ValueError("extend is a Continuation, which fixes its overlap; do not pass overlap too")
        return extend
    if not isinstance(extend, (tuple, list)) or len(extend) != 2 or not all(map(torch.is_tensor, extend)):
        raise ValueError("extend must be a Continuation or (video latent, audio latent) of the clip to continue")
    if overlap is None:
        raise ValueError("extending a clip given as latents needs overlap= (seconds of it the new window sees)")
    video, audio = extend
    if video.ndim != 5 or audio.ndim != 3 or video.shape[0] != 1 or audio.shape[0] != 1:
        raise ValueError(f"extend takes one clip's latents, video [1, C, T, H, W] and audio [1, C, L]; got "
                         f"{list(video.shape)} and {list(audio.shape)}")
    fps, rate = float(pipe.video_ae.video_latent_fps), float(pipe.audio_ae.audio_latent_rate)
    return continuation(video, audio, overlap_frames(overlap, fps, _temporal_patch(pipe)), fps, rate)


def image_latent(video_ae, image: torch.Tensor) -> torch.Tensor:
    """The first latent video frame of a clip that starts on `image` ([H, W, 3], or a batch
    [B, H, W, 3], in 0..1): the image held still for the frames one latent frame covers (a causal VAE
    such as Wan's covers one). Training gives i2av this same latent (ccl_lab.data's "first_still")."""
    if image.ndim not in (3, 4) or image.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3] or [B, H, W, 3] (RGB in 0..1), got {list(image.shape)}")
    images = image if image.ndim == 4 else image.unsqueeze(0)
    still = images.unsqueeze(1).expand(-1, video_ae.temporal_factor, -1, -1, -1)
    return video_ae.encode(still)[:, :, :1]


@dataclass
class Result:
    frames: torch.Tensor  # [T, H, W, 3] in 0..1
    waveform: torch.Tensor  # [S]
    fps: float
    sample_rate: int
    video_latent: torch.Tensor
    audio_latent: torch.Tensor


class ProgressBar:
    """A one-line progress bar on stderr (no dependency)."""

    def __init__(self, total: int, label: str = "sampling", stream=None, width: int = 30):
        self.total, self.label, self.width = total, label, width
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.line_open = False  # a bar is on the line without its newline

    def end_line(self) -> None:
        """Finish a bar cut short, so that a message printed next starts on its own line."""
        if self.line_open:
            self.stream.write("\n")
            self.stream.flush()
            self.line_open = False

    def __call__(self, i: int, total: int, _latents=None) -> None:
        done = i + 1
        filled = round(self.width * done / total)
        rate = (time.perf_counter() - self.start) / done
        self.line_open = True  # before the write: a signal may land right after it
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} "
                          f"{rate:.2f} s/step")
        if done == total:
            self.stream.write("\n")
            self.line_open = False
        self.stream.flush()


@torch.no_grad()
def generate(pipe, prompt: str, seed: int = 0, steps: int = 25, sampler: str = DEFAULT_METHOD, shift: float = SHIFT,
             guidance: Optional[Guidance] = None, negative: str = "", task: str = "t2av",
             audio: Optional[torch.Tensor] = None, frames: Optional[torch.Tensor] = None,
             image: Optional[torch.Tensor] = None, progress: Optional[Callable] = None,
             negative_audio: Optional[str] = None, seconds: Optional[float] = None,
             extend: Union[Continuation, Tuple[torch.Tensor, torch.Tensor], None] = None,
             overlap: Optional[float] = None) -> Result:
    """One clip of `seconds` (None: the pipeline's native length). For task "a2v" pass `audio`
    (waveform [S] at the pipeline's rate); for "v2a" pass `frames` ([T, H, W, 3] at the pipeline's
    fps and size); for "i2av" pass `image` ([H, W, 3] in 0..1, the pipeline's size), the clip's
    first frame. The given stream or frame is held clean. `negative` is the unconditional text of
    both towers, or of the video tower only when `negative_audio` gives the audio tower its own
    (Ovi guides with one negative per tower).

    `extend` makes the window that continues a clip (DCR task "extend"): a Continuation, or the
    clip's (video latent, audio latent) with `overlap` seconds of it for the window to see. The
    overlap is the window's clean prefix, held at the clip's values; the Result is the window
    (`extension.join` appends it to the clip; `generate_long` chains windows)."""
    check_settings(seed, steps, shift)
    if task not in GENERATE_TASKS:
        raise ValueError(f"task must be one of {', '.join(map(repr, GENERATE_TASKS))}, got {task!r}")
    if task == "i2av" and image is None:
        raise ValueError("task 'i2av' needs the first frame (an image, e.g. from --image FILE)")
    if task == "a2v" and audio is None:
        raise ValueError("task 'a2v' needs an input audio (a waveform, e.g. from --audio FILE)")
    if task == "v2a" and frames is None:
        raise ValueError("task 'v2a' needs input video frames (e.g. from --video FILE)")
    cont = None
    if extend is not None:
        if task != "t2av":
            raise ValueError(f"extend continues a clip with both streams generated (as t2av); task {task!r} "
                             "cannot be combined with it")
        cont = as_continuation(pipe, extend, overlap)
    elif overlap is not None:
        raise ValueError("overlap is only used with extend= (the clip to continue)")
    guidance = guidance or GUIDANCE
    model = pipe.model
    device = pipe.model.device
    text, _ = pipe.text_encoder.encode([prompt])
    uncond, _ = pipe.text_encoder.encode([negative])
    uncond_audio = None if negative_audio is None else pipe.text_encoder.encode([negative_audio])[0].to(device)
    vframes, alen = clip_lengths(pipe, seconds)
    if cont is not None:  # the window's audio ends where its video does, on the clip's own timeline
        alen = audio_index(cont.video_start + vframes, float(pipe.video_ae.video_latent_fps),
                           float(pipe.audio_ae.audio_latent_rate)) - cont.audio_start
    vshape = pipe.video_ae.latent_shape(frames=vframes * pipe.video_ae.temporal_factor)
    ashape = pipe.audio_ae.latent_shape(samples=alen * pipe.audio_ae.hop)
    _check_given_length(pipe, task, audio, frames, vshape, ashape)
    g = torch.Generator().manual_seed(seed)
    latents = {"video": torch.randn(1, *vshape, generator=g).to(device),
               "audio": torch.randn(1, *ashape, generator=g).to(device)}
    hold = set()
    if task == "a2v":
        latents["audio"] = pipe.audio_ae.encode(fit_length(audio.reshape(1, -1), ashape[-1] * pipe.audio_ae.hop).to(device))
        hold.add("audio")
    if task == "v2a":
        latents["video"] = pipe.video_ae.encode(frames.unsqueeze(0).to(device))
        hold.add("video")
    if task == "i2av":
        first = image_latent(pipe.video_ae, image.to(device))
        latents["video"][:, :, :1] = first
        hold = {"video": prefix_mask(make_routes(task, 1).video_prefix, latents["video"])}
    prefixes = {}
    if cont is not None:
        if cont.video.shape[1] != vshape[0] or tuple(cont.video.shape[3:]) != tuple(vshape[2:]) \
                or cont.audio.shape[1] != ashape[0]:
            raise ValueError(f"the clip to extend has latents {list(cont.video.shape)} / {list(cont.audio.shape)}, "
                             f"which do not match this pipeline's {list(vshape)} / {list(ashape)} (channels, size)")
        latents["video"], latents["audio"] = place(cont, latents["video"], latents["audio"])
        prefixes = {"video_prefix": cont.video_prefix, "audio_prefix": cont.audio_prefix}
        hold = {name: prefix_mask(torch.tensor([prefixes[f"{name}_prefix"]]), latents[name])
                for name in ("video", "audio")}

    def velocity(x, sigma):
        v, a = guided_velocity(model, x["video"], x["audio"], sigma, None, text.to(device), uncond.to(device),
                               guidance, tasks="extend" if cont is not None else task, uncond_text_audio=uncond_audio,
                               **prefixes)
        return {"video": v, "audio": a}

    out = sample(velocity, latents, flow_sigmas(steps, shift), sampler, hold=hold, callback=progress)
    video = pipe.video_ae.decode(out["video"])[0]
    wave = pipe.audio_ae.decode(out["audio"])[0]
    if task == "a2v":
        wave = audio.reshape(-1)[: wave.shape[-1]].to(wave)
    if task == "v2a":
        video = frames.to(video)
    if cont is None:  # the sound lasts as long as the picture (whole audio latents can overshoot by half of one)
        wave = _same_duration(pipe, wave, video.shape[0])
    return Result(video.clamp(0, 1).cpu(), wave.cpu(), pipe.video_fps, pipe.sample_rate, out["video"], out["audio"])


def _same_duration(pipe, wave: torch.Tensor, frames: int) -> torch.Tensor:
    return fit_length(wave, round(frames / pipe.video_fps * pipe.sample_rate))


def _check_given_length(pipe, task, audio, frames, vshape, ashape) -> None:
    """The given stream of a2v / v2a must cover the clip being made, or the streams would not line up."""
    samples = round(vshape[1] * pipe.video_ae.temporal_factor / pipe.video_fps * pipe.sample_rate)
    if task == "a2v" and audio is not None and audio.numel() != samples:
        raise ValueError(f"the audio has {audio.numel()} samples but the clip takes {samples}; "
                         "pass seconds= for its length, or fit it (media.fit_length)")
    if task == "v2a" and frames is not None and frames.shape[0] != vshape[1] * pipe.video_ae.temporal_factor:
        raise ValueError(f"the video has {frames.shape[0]} frames but the clip takes "
                         f"{vshape[1] * pipe.video_ae.temporal_factor}; pass seconds= for its length")


def window_seed(seed: int, index: int) -> int:
    """The noise seed of a long clip's window `index` (0: the seed itself, so a long clip starts as
    the native clip of its seed); later windows draw independent noise."""
    return seed if index == 0 else int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def window_plan(pipe, seconds: float, window: Optional[float] = None, overlap: float = 0.5,
                start: int = 0) -> List[Tuple[int, int]]:
    """(first latent video frame, latent frames) of each window of a clip of `seconds` made in
    windows of `window` seconds (None: the native length) that each see the last `overlap` seconds
    of the clip so far. The last window is shortened to end on the clip's end. `start`: latent
    frames of a given clip to continue (its windows only are listed)."""
    total = clip_lengths(pipe, seconds, limit=False)[0]
    size = clip_lengths(pipe, window)[0]
    fps = float(pipe.video_ae.video_latent_fps)
    frames = overlap_frames(overlap, fps, _temporal_patch(pipe))
    if frames >= size:
        raise ValueError(f"the overlap ({frames / fps:g} s) must be shorter than the window ({size / fps:g} s), "
                         "or no window would add anything")
    plan, end = [], start
    if start == 0:
        end = min(size, total)
        plan.append((0, end))
    elif start <= frames:
        raise ValueError(f"the clip to extend lasts {start / fps:g} s, not longer than the overlap "
                         f"({frames / fps:g} s); use a shorter overlap")
    while end < total:
        first = end - frames
        plan.append((first, min(size, total - first)))
        end = first + plan[-1][1]
    return plan


@torch.no_grad()
def generate_long(pipe, prompt: str, seconds: float, window: Optional[float] = None, overlap: float = 0.5,
                  seed: int = 0, clip: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
                  progress: Optional[Callable] = None, **settings) -> Result:
    """A clip of `seconds` made of windows (`window_plan`, the one place that turns `overlap` into latent
    frames): the first is `generate(**settings)` (t2av, or i2av with image=), each later one continues
    the clip from the window's first frame, i.e. its last `overlap` seconds (task "extend"), with noise
    of `window_seed(seed, i)`, and is joined on (extension.join). With `clip` (its video and audio
    latents) every window continues that clip, and `seconds` counts it too.
    The latents are decoded once, whole. progress(i, total, latents) counts the steps of all windows."""
    fps, rate = float(pipe.video_ae.video_latent_fps), float(pipe.audio_ae.audio_latent_rate)
    if clip is not None and settings.get("task", "t2av") != "t2av":
        raise ValueError(f"continuing a given clip generates both streams (t2av); task {settings['task']!r} "
                         "cannot be combined with it")
    plan = window_plan(pipe, seconds, window, overlap, start=0 if clip is None else clip[0].shape[2])
    video, audio = clip if clip is not None else (None, None)
    for i, (first, size) in enumerate(plan):
        bar = None if progress is None else \
            (lambda k, total, x, i=i: progress(i * total + k, len(plan) * total, x))
        if video is None:
            r = generate(pipe, prompt, seed=window_seed(seed, i), seconds=size / fps, progress=bar, **settings)
            video, audio = r.video_latent, r.audio_latent
            continue
        cont = continuation(video, audio, video.shape[2] - first, fps, rate)  # the overlap: from `first` on
        window_settings = {k: v for k, v in settings.items() if k not in ("task", "image")}
        r = generate(pipe, prompt, seed=window_seed(seed, i), seconds=size / fps, extend=cont, progress=bar,
                     **window_settings)
        video, audio = join_latents(video, audio, cont, r.video_latent, r.audio_latent)
    out_video = pipe.video_ae.decode(video)[0].clamp(0, 1).cpu()
    out_wave = _same_duration(pipe, pipe.audio_ae.decode(audio)[0], out_video.shape[0]).cpu()
    return Result(out_video, out_wave, pipe.video_fps, pipe.sample_rate, video, audio)


@torch.no_grad()
def generate_many(pipe, prompts: Sequence[str], seeds: Sequence[int], steps: int = 25, sampler: str = DEFAULT_METHOD,
                  shift: float = SHIFT, guidance: Optional[Guidance] = None, negative: str = "") -> List[Result]:
    """Text-to-audio-video for several (prompt, seed) pairs in one batch. Clip i starts from the same
    noise as `generate(pipe, prompts[i], seed=seeds[i])`, so both give the same clip up to float
    rounding; batching is what makes benchmarks over many prompts fast on a GPU."""
    if len(prompts) != len(seeds) or not prompts:
        raise ValueError(f"generate_many needs one seed per prompt, got {len(prompts)} prompts and {len(seeds)} seeds")
    for seed in seeds:
        check_settings(seed, steps, shift)
    guidance = guidance or GUIDANCE
    device = pipe.model.device
    text, _ = pipe.text_encoder.encode(list(prompts))
    uncond, _ = pipe.text_encoder.encode([negative] * len(prompts))
    vshape, ashape = pipe.video_ae.latent_shape(), pipe.audio_ae.latent_shape()
    video, audio = [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        video.append(torch.randn(1, *vshape, generator=g))
        audio.append(torch.randn(1, *ashape, generator=g))
    latents = {"video": torch.cat(video).to(device), "audio": torch.cat(audio).to(device)}
    text, uncond = text.to(device), uncond.to(device)

    def velocity(x, sigma):
        v, a = guided_velocity(pipe.model, x["video"], x["audio"], sigma, None, text, uncond, guidance, tasks="t2av")
        return {"video": v, "audio": a}

    out = sample(velocity, latents, flow_sigmas(steps, shift), sampler)
    frames = pipe.video_ae.decode(out["video"]).clamp(0, 1).cpu()
    # One decode per clip: the audio decoder's noise floor is drawn per call, as in `generate`.
    waves = torch.cat([pipe.audio_ae.decode(out["audio"][i:i + 1]) for i in range(len(prompts))]).cpu()
    return [Result(frames[i], waves[i], pipe.video_fps, pipe.sample_rate, out["video"][i:i + 1], out["audio"][i:i + 1])
            for i in range(len(prompts))]
