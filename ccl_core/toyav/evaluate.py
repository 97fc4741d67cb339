"""A pipeline measured on ToyAV: t2av over the 36 prompts, and a2v / v2a on held-out ground truth.

Shared by benchmarks/bench_toyav.py and the ablation study, so that both score the same clips the
same way. a2v / v2a take the given stream from a ground-truth clip of a seed the model never saw
in training; the pair is scored with the given stream as the reference.
"""

from __future__ import annotations

from typing import List

import torch

from .generator import generate_clip
from .metrics import score_clip
from .world import PROMPTS

HELD_OUT_SEED = 10_000_000  # ground-truth clips for a2v / v2a and validation: seeds no training run uses


def t2av_scores(pipe, seed: int, **settings) -> List[dict]:
    """Scores of the 36 prompts at one noise seed (one batch; equal to generating them one by one)."""
    from ..generate import generate_many

    results = generate_many(pipe, PROMPTS, [seed] * len(PROMPTS), **settings)
    return [score_clip(r.frames.numpy(), r.fps, r.waveform.numpy(), r.sample_rate, p) for p, r in zip(PROMPTS, results)]


def conditioned_scores(pipe, task: str, n: int, **settings) -> List[dict]:
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
        scores.append(score_clip(r.frames.numpy(), r.fps, r.waveform.numpy(), r.sample_rate, clip.prompt))
    return scores
