"""Generation with a loaded pipeline: text-, image- and audio-to-video and video-to-audio.

The command line (`python -m ccl_core generate ...`) and the benchmarks call `generate`; inside
ComfyUI the native samplers drive the model instead.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch

from .guidance import Guidance, guided_velocity
from .routing import prefix_mask
from .sampling import flow_sigmas, sample


# torch's CPU generator seeds its Mersenne Twister with the seed's low 32 bits only: seeds s and
# s + 2**32 give the same noise. Seeds are therefore taken in [0, 2**32), where each one is distinct.
SEED_RANGE = (0, 2**32 - 1)
STEPS_RANGE = (1, 1000)  # more steps than this change nothing a flow sampler can show, and take hours


def check_settings(seed: int = 0, steps: int = 25, shift: float = 3.0) -> None:
    """Refuse a seed, step count or shift outside what generation can honour, naming the range."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ValueError(f"seed must be an integer in {SEED_RANGE[0]}..{SEED_RANGE[1]} (2**32 - 1; larger seeds "
                         f"would repeat the noise of smaller ones), got {seed}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not STEPS_RANGE[0] <= steps <= STEPS_RANGE[1]:
        raise ValueError(f"steps must be in {STEPS_RANGE[0]}..{STEPS_RANGE[1]}, got {steps}")
    if not (math.isfinite(shift) and shift > 0):
        raise ValueError(f"shift must be a finite number > 0, got {shift}")


GENERATE_TASKS = ("t2av", "i2av", "a2v", "v2a")


def image_latent(video_ae, image: torch.Tensor) -> torch.Tensor:
    """The first latent video frame of a clip that starts on `image` ([H, W, 3] in 0..1): the image
    held still for the frames one latent frame covers (a causal VAE such as Wan's covers one)."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3] (RGB in 0..1), got {list(image.shape)}")
    still = image.unsqueeze(0).expand(video_ae.temporal_factor, -1, -1, -1)
    return video_ae.encode(still.unsqueeze(0))[:, :, :1]


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
def generate(pipe, prompt: str, seed: int = 0, steps: int = 25, sampler: str = "dpmpp_2m", shift: float = 3.0,
             guidance: Optional[Guidance] = None, negative: str = "", task: str = "t2av",
             audio: Optional[torch.Tensor] = None, frames: Optional[torch.Tensor] = None,
             image: Optional[torch.Tensor] = None, progress: Optional[Callable] = None,
             negative_audio: Optional[str] = None) -> Result:
    """One clip. For task "a2v" pass `audio` (waveform [S] at the pipeline's rate); for "v2a" pass
    `frames` ([T, H, W, 3] at the pipeline's fps and size); for "i2av" pass `image` ([H, W, 3] in
    0..1, the pipeline's size), the clip's first frame. The given stream or frame is held clean.
    `negative` is the unconditional text of both towers, or of the video tower only when
    `negative_audio` gives the audio tower its own (Ovi guides with one negative per tower)."""
    check_settings(seed, steps, shift)
    if task not in GENERATE_TASKS:
        raise ValueError(f"task must be one of {', '.join(map(repr, GENERATE_TASKS))}, got {task!r}")
    if task == "i2av" and image is None:
        raise ValueError("task 'i2av' needs the first frame (an image, e.g. from --image FILE)")
    if task == "a2v" and audio is None:
        raise ValueError("task 'a2v' needs an input audio (a waveform, e.g. from --audio FILE)")
    if task == "v2a" and frames is None:
        raise ValueError("task 'v2a' needs input video frames (e.g. from --video FILE)")
    guidance = guidance or Guidance("joint", video_scale=3.0, audio_scale=3.0)
    model = pipe.model
    device = pipe.model.device
    text, _ = pipe.text_encoder.encode([prompt])
    uncond, _ = pipe.text_encoder.encode([negative])
    uncond_audio = None if negative_audio is None else pipe.text_encoder.encode([negative_audio])[0].to(device)
    vshape = pipe.video_ae.latent_shape()
    ashape = pipe.audio_ae.latent_shape()
    g = torch.Generator().manual_seed(seed)
    latents = {"video": torch.randn(1, *vshape, generator=g).to(device),
               "audio": torch.randn(1, *ashape, generator=g).to(device)}
    hold = set()
    if task == "a2v":
        latents["audio"] = pipe.audio_ae.encode(audio.reshape(1, -1).to(device))
        hold.add("audio")
    if task == "v2a":
        latents["video"] = pipe.video_ae.encode(frames.unsqueeze(0).to(device))
        hold.add("video")
    if task == "i2av":
        first = image_latent(pipe.video_ae, image.to(device))
        latents["video"][:, :, :1] = first
        hold = {"video": prefix_mask(torch.ones(1, dtype=torch.long), latents["video"])}

    def velocity(x, sigma):
        v, a = guided_velocity(model, x["video"], x["audio"], sigma, None, text.to(device), uncond.to(device),
                               guidance, tasks=task, uncond_text_audio=uncond_audio)
        return {"video": v, "audio": a}

    out = sample(velocity, latents, flow_sigmas(steps, shift), sampler, hold=hold, callback=progress)
    video = pipe.video_ae.decode(out["video"])[0]
    wave = pipe.audio_ae.decode(out["audio"])[0]
    if task == "a2v":
        wave = audio.reshape(-1)[: wave.shape[-1]].to(wave)
    if task == "v2a":
        video = frames.to(video)
    return Result(video.clamp(0, 1).cpu(), wave.cpu(), pipe.video_fps, pipe.sample_rate, out["video"], out["audio"])


@torch.no_grad()
def generate_many(pipe, prompts: Sequence[str], seeds: Sequence[int], steps: int = 25, sampler: str = "dpmpp_2m",
                  shift: float = 3.0, guidance: Optional[Guidance] = None, negative: str = "") -> List[Result]:
    """Text-to-audio-video for several (prompt, seed) pairs in one batch. Clip i starts from the same
    noise as `generate(pipe, prompts[i], seed=seeds[i])`, so both give the same clip up to float
    rounding; batching is what makes benchmarks over many prompts fast on a GPU."""
    if len(prompts) != len(seeds) or not prompts:
        raise ValueError(f"generate_many needs one seed per prompt, got {len(prompts)} prompts and {len(seeds)} seeds")
    for seed in seeds:
        check_settings(seed, steps, shift)
    guidance = guidance or Guidance("joint", video_scale=3.0, audio_scale=3.0)
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
