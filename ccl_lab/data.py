"""ToyAV training data: clips encoded once into latents, then served as shuffled, resumable batches.

Generating and encoding a clip costs far more than a training step on the small model, so a
dataset of N clips (seeds base_seed .. base_seed + N - 1) is encoded once and cached as a
safetensors file; batches are drawn from it in a fresh permutation per epoch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterator, Optional

import torch

from .generator import generate_batch


def _clip_chunk(seeds):
    clips = generate_batch(seeds)
    return clips.frames, clips.waveforms, list(clips.prompts)


@torch.no_grad()
def encode_clips(n_clips: int, base_seed: int, video_ae, audio_ae, text_encoder, chunk: int = 32,
                 progress=None, workers: int = 0) -> Dict[str, torch.Tensor]:
    """Latents of clips base_seed .. base_seed + n_clips - 1: video, audio, text [N, ...] on the CPU.

    The autoencoders run on their own device; workers > 0 draws the clips in that many processes.
    """
    device = next(video_ae.parameters()).device
    chunks = [list(range(base_seed + s, base_seed + min(n_clips, s + chunk))) for s in range(0, n_clips, chunk)]
    pool = None
    if workers > 0:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        drawn = pool.map(_clip_chunk, chunks) if pool else map(_clip_chunk, chunks)
        video, audio, text, done = [], [], [], 0
        for frames, waveforms, prompts in drawn:
            video.append(video_ae.encode(torch.from_numpy(frames).to(device)).cpu())
            audio.append(audio_ae.encode(torch.from_numpy(waveforms).to(device)).cpu())
            text.append(text_encoder.encode(prompts)[0].cpu())
            done += len(prompts)
            if progress is not None:
                progress(done, n_clips)
    finally:
        if pool is not None:
            pool.shutdown()
    return {"video": torch.cat(video), "audio": torch.cat(audio), "text": torch.cat(text)}


def load_or_encode(cache: Optional[os.PathLike], n_clips: int, base_seed: int, video_ae, audio_ae, text_encoder,
                   progress=None, workers: int = 0) -> Dict[str, torch.Tensor]:
    """The encoded dataset from `cache` if it matches (size, seed), else encode it and write `cache`."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    key = {"n_clips": str(n_clips), "base_seed": str(base_seed)}
    if cache is not None and Path(cache).is_file():
        with safe_open(str(cache), "pt") as f:
            if {k: f.metadata().get(k) for k in key} == key:
                return {k: f.get_tensor(k) for k in f.keys()}
    data = encode_clips(n_clips, base_seed, video_ae, audio_ae, text_encoder, progress=progress, workers=workers)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = str(cache) + ".tmp"
        save_file({k: v.contiguous() for k, v in data.items()}, tmp, metadata=key)
        os.replace(tmp, cache)
    return data


class LatentBatches:
    """Endless shuffled batches over an encoded dataset, resumable (state_dict / load_state_dict)."""

    def __init__(self, data: Dict[str, torch.Tensor], null_text: torch.Tensor, batch_size: int, seed: int = 0):
        n = data["text"].shape[0]
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n} clips)")
        self.data, self.null_text, self.batch_size, self.seed = data, null_text, batch_size, seed
        self.epoch, self.position = 0, 0

    def _order(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.data["text"].shape[0], generator=g)

    def __iter__(self) -> Iterator[dict]:
        order = self._order()
        while True:
            if self.position + self.batch_size > order.numel():
                self.epoch, self.position = self.epoch + 1, 0
                order = self._order()
            idx = order[self.position:self.position + self.batch_size]
            self.position += self.batch_size
            batch = {k: v[idx] for k, v in self.data.items()}
            batch["null_text"] = self.null_text
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
