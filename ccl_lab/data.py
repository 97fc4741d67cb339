"""ToyAV training data: world clips encoded once into latents and cached.

Generating and encoding a clip costs far more than a training step on the small model, so a
dataset of N clips (seeds base_seed .. base_seed + N - 1) of one duration is encoded once and
cached as a safetensors file, with each clip's first frame held still and encoded ("first_still":
the clean first frame i2av trains on, the latent sampling makes of an image). The training
library serves it (ccl_train.data): LatentBatches draws batches in a fresh permutation per epoch, DurationBatches serves datasets of several
durations, one duration per batch (shapes match inside a batch) drawn with given weights.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ccl_core.extension import audio_index
from ccl_core.generate import image_latent
from . import world as w
from .generator import clip_frames, generate_batch


def clip_latents(seconds: float, video_ae, audio_ae, temporal_patch: int = 1) -> Tuple[int, int]:
    """(latent video frames, audio latents) of a training clip of `seconds`.

    The clip must be whole tokens of latent video frames (the model's temporal patch); the audio
    covers the same time rounded to the nearest latent, the rule sampling uses
    (generate.clip_lengths, extension.audio_index), so training sees the lengths sampling makes.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds <= 0:
        raise ValueError(f"a clip duration must be a number of seconds > 0, got {seconds!r}")
    frames = clip_frames(seconds)
    step = video_ae.temporal_factor * temporal_patch  # frames per video token along time
    if abs(frames / w.FPS - seconds) > 1e-9 or frames % step:
        unit = step / w.FPS
        near = sorted({max(1, math.floor(seconds / unit)), math.ceil(seconds / unit)})
        raise ValueError(f"a clip of {seconds:g} s is not whole latent video frames ({unit:g} s each at "
                         f"{w.FPS} fps); use a multiple of {unit:g} s, e.g. "
                         f"{' or '.join(f'{k * unit:g}' for k in near)}")
    latent = frames // video_ae.temporal_factor
    return latent, audio_index(latent, video_ae.video_latent_fps, audio_ae.audio_latent_rate)


def _clip_chunk(seeds, seconds: float = w.DURATION_S, samples: Optional[int] = None):
    clips = generate_batch(seeds, seconds=seconds, samples=samples)
    return clips.frames, clips.waveforms, list(clips.prompts)


@torch.no_grad()
def encode_clips(n_clips: int, base_seed: int, video_ae, audio_ae, text_encoder, chunk: int = 32,
                 progress=None, workers: int = 0, seconds: float = w.DURATION_S) -> Dict[str, torch.Tensor]:
    """Latents of clips base_seed .. base_seed + n_clips - 1 of `seconds` (clip_latents' lengths):
    video, audio, text and first_still [N, ...] on the CPU.

    The autoencoders run on their own device; workers > 0 draws the clips in that many processes.
    """
    _, audio_latents = clip_latents(seconds, video_ae, audio_ae)
    draw = functools.partial(_clip_chunk, seconds=seconds, samples=audio_latents * audio_ae.hop)
    device = next(video_ae.parameters()).device
    with _drawn(draw, n_clips, base_seed, chunk, workers) as drawn:
        video, audio, text, still, done = [], [], [], [], 0
        for frames, waveforms, prompts in drawn:
            frames = torch.from_numpy(frames).to(device)
            video.append(video_ae.encode(frames).cpu())
            still.append(image_latent(video_ae, frames[:, 0]).cpu())
            audio.append(audio_ae.encode(torch.from_numpy(waveforms).to(device)).cpu())
            text.append(text_encoder.encode(prompts)[0].cpu())
            done += len(prompts)
            if progress is not None:
                progress(done, n_clips)
    return {"video": torch.cat(video), "audio": torch.cat(audio), "text": torch.cat(text),
            "first_still": torch.cat(still)}


@torch.no_grad()
def first_stills(n_clips: int, base_seed: int, video_ae, chunk: int = 32, workers: int = 0,
                 seconds: float = w.DURATION_S) -> torch.Tensor:
    """The "first_still" of encode_clips alone, for a cache written before it had one: the clips are
    drawn again (the same seeds and duration) and only their first frames encoded."""
    draw = functools.partial(_clip_chunk, seconds=seconds)
    device = next(video_ae.parameters()).device
    with _drawn(draw, n_clips, base_seed, chunk, workers) as drawn:
        return torch.cat([image_latent(video_ae, torch.from_numpy(frames[:, 0]).to(device)).cpu()
                          for frames, _, _ in drawn])


@contextlib.contextmanager
def _drawn(draw, n_clips: int, base_seed: int, chunk: int, workers: int):
    """draw(seeds) over the clips' seeds in chunks, in order: in `workers` processes when > 0."""
    chunks = [list(range(base_seed + s, base_seed + min(n_clips, s + chunk))) for s in range(0, n_clips, chunk)]
    if workers <= 0:
        yield map(draw, chunks)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool.map(draw, chunks)


def cache_key(n_clips: int, base_seed: int, seconds: float = w.DURATION_S) -> Dict[str, str]:
    """What a cache file must record to be reused: the clips' count, first seed and duration."""
    return {"n_clips": str(n_clips), "base_seed": str(base_seed), "seconds": f"{float(seconds)!r}"}


def _matches(meta: Optional[Dict[str, str]], key: Dict[str, str]) -> bool:
    """A file written before durations existed has no "seconds": its clips are the world's 2 s."""
    meta = dict(meta or {})
    meta.setdefault("seconds", f"{float(w.DURATION_S)!r}")
    try:
        meta["seconds"] = f"{float(meta['seconds'])!r}"
    except ValueError:
        return False
    return {k: meta.get(k) for k in key} == key


def duration_cache(cache: os.PathLike, seconds: float) -> Path:
    """The cache file of a dataset of `seconds`: `cache` itself for the world's duration, else
    beside it with the duration in its name (latents.safetensors -> latents-4s.safetensors)."""
    cache = Path(cache)
    if float(seconds) == float(w.DURATION_S):
        return cache
    return cache.with_name(f"{cache.stem}-{seconds:g}s{cache.suffix}")


def load_or_encode(cache: Optional[os.PathLike], n_clips: int, base_seed: int, video_ae, audio_ae, text_encoder,
                   progress=None, workers: int = 0, seconds: float = w.DURATION_S) -> Dict[str, torch.Tensor]:
    """The encoded dataset from `cache` if it matches (size, seed, duration), else encode it and
    write `cache`. A cache without a duration (written before there were others) is the world's 2 s."""
    key = cache_key(n_clips, base_seed, seconds)
    found = _read(cache, key)
    if found is not None:
        data, meta = found
        if "first_still" not in data:
            # written before first_still existed: add it, keep the rest (and the file's own key) as they are
            print(f"adding the clips' still first frames to {cache} ...", flush=True)
            data["first_still"] = first_stills(n_clips, base_seed, video_ae, workers=workers, seconds=seconds)
            _write(cache, data, meta)
        return data
    data = encode_clips(n_clips, base_seed, video_ae, audio_ae, text_encoder, progress=progress, workers=workers,
                        seconds=seconds)
    if cache is not None:
        _write(cache, data, key)
    return data


def _read(cache: Optional[os.PathLike], key: Dict[str, str]):
    """(tensors, metadata) of `cache` if it exists and matches `key`, else None."""
    from safetensors import safe_open

    if cache is None or not Path(cache).is_file():
        return None
    with safe_open(str(cache), "pt") as f:
        meta = f.metadata()
        if not _matches(meta, key):
            return None
        return {k: f.get_tensor(k) for k in f.keys()}, dict(meta or {})


def _write(cache: os.PathLike, data: Dict[str, torch.Tensor], metadata: Dict[str, str]) -> None:
    """Write the cache through a temporary file, so an interrupted write never leaves half a cache."""
    from safetensors.torch import save_file

    Path(cache).parent.mkdir(parents=True, exist_ok=True)
    tmp = str(cache) + ".tmp"
    save_file({k: v.contiguous() for k, v in data.items()}, tmp, metadata=metadata)
    os.replace(tmp, cache)
