"""A pipeline measured on ToyAV: t2av over the 36 prompts, and a2v / v2a on held-out ground truth.

Shared by benchmarks/bench_toyav.py and the ablation study, so that both score the same clips the
same way. a2v / v2a take the given stream from a ground-truth clip of a seed the model never saw
in training; the pair is scored with the given stream as the reference. With `via_mp4` each clip
is scored as the command line delivers it: written with media.write_mp4 and decoded again.
"""

from __future__ import annotations

import os
import tempfile
from typing import List

import torch

from .generator import generate_clip
from .metrics import load_mp4, score_clip
from .world import PROMPTS

HELD_OUT_SEED = 10_000_000  # ground-truth clips for a2v / v2a and validation: seeds no training run uses


def score_result(result, prompt: str, via_mp4: bool = False) -> dict:
    """ToyAV scores of one generated Result, in memory or after an mp4 round trip."""
    if not via_mp4:
        return score_clip(result.frames.numpy(), result.fps, result.waveform.numpy(), result.sample_rate, prompt)
    from ..media import write_mp4

    with tempfile.TemporaryDirectory() as d:
        path = write_mp4(os.path.join(d, "clip.mp4"), result.frames, result.fps, result.waveform, result.sample_rate)
        return score_clip(*load_mp4(path), prompt)


def t2av_scores(pipe, seed: int, via_mp4: bool = False, **settings) -> List[dict]:
    """Scores of the 36 prompts at one noise seed (one batch; equal to generating them one by one)."""
    from ..generate import generate_many

    results = generate_many(pipe, PROMPTS, [seed] * len(PROMPTS), **settings)
    return [score_result(r, p, via_mp4) for p, r in zip(PROMPTS, results)]


def conditioned_scores(pipe, task: str, n: int, via_mp4: bool = False, **settings) -> List[dict]:
    """Scores of `task` ("a2v" or "v2a") on held-out clips HELD_OUT_SEED .. + n - 1 (noise seed i)."""
    from ..generate import generate

    if task not in ("a2v", "v2a"):
        raise ValueError(f"task must be 'a2v' or 'v2a', got {task!r}")
    scores = []
    for i in range(n):
        clip = generate_clip(HELD_OUT_SEED + i)
        given = dict(audio=torch.from_numpy(clip.waveform)) if task == "a2v" else \
            dict(frames=torch.from_numpy(clip.frames))
        r = generate(pipe, clip.prompt, seed=i, task=task, **given, **settings)
        scores.append(score_result(r, clip.prompt, via_mp4))
    return scores
