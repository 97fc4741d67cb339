"""A pipeline measured on ToyAV: t2av over the 36 prompts, and a2v / v2a on held-out ground truth.

Shared by benchmarks/bench_toyav.py and the ablation study, so that both score the same clips the
same way. a2v / v2a take the given stream from a ground-truth clip of a seed the model never saw
in training; the pair is scored with the given stream as the reference. With `via_mp4` each clip
is scored as the command line delivers it: written with media.write_mp4 and decoded again.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from typing import List, Optional

import torch

from .generator import generate_clip
from .metrics import load_mp4, score_clip
from .world import PROMPTS

HELD_OUT_SEED = 10_000_000  # ground-truth clips for a2v / v2a and validation: seeds no training run uses


def benchmark_parser(doc: str, out_example: str) -> argparse.ArgumentParser:
    """The options every ToyAV benchmark takes (--model, --steps, --threads, --out); each adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a CCL checkpoint for the ToyAV latents (default: the shipped one)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help=f"write the figures as JSON (e.g. {out_example})")
    return ap


def benchmark_pipeline(args, overrides: Optional[dict] = None):
    """The pipeline a benchmark measures (args.model, or the shipped one, its config changed by
    `overrides`), on args.threads threads."""
    from ccl_core.toyav.embedded import load_pipeline

    torch.set_num_threads(args.threads)
    return load_pipeline(args.model, overrides=overrides)


def cli_guidance(video_scale: Optional[float] = None, audio_scale: Optional[float] = None):
    """The guidance `python -m ccl_core generate` uses by default (the embedded model's, toyav.embedded
    GUIDANCE): what the benchmarks measure; a scale given replaces the default's."""
    from dataclasses import replace

    from ccl_core.toyav.embedded import GUIDANCE

    given = {"video_scale": video_scale, "audio_scale": audio_scale}
    return replace(GUIDANCE, **{k: v for k, v in given.items() if v is not None})


def settings_label(guidance) -> str:
    """How a benchmark's JSON names its sampling settings: the guidance, and generate()'s default sampler
    and shift (the embedded model's), which the ToyAV benchmarks sample with."""
    from ccl_core.sampling import DEFAULT_METHOD
    from ccl_core.toyav.embedded import SHIFT

    return f"{guidance.form} {guidance.video_scale:g} / {guidance.audio_scale:g}, {DEFAULT_METHOD}, shift {SHIFT:g}"


def write_result(result: dict, path) -> None:
    """A benchmark's figures as JSON at path (nothing when path is None)."""
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1)


def brief(scores: dict) -> dict:
    """The scalar entries of a score or an aggregate, floats rounded to 4 places: what benchmarks print
    and record (per-event lists and nested tables left out)."""
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()
            if not isinstance(v, (list, dict))}


def score_result(result, prompt: str, via_mp4: bool = False) -> dict:
    """ToyAV scores of one generated Result, in memory or after an mp4 round trip."""
    if not via_mp4:
        return score_clip(result.frames.numpy(), result.fps, result.waveform.numpy(), result.sample_rate, prompt)
    from ccl_core.media import write_mp4

    with tempfile.TemporaryDirectory() as d:
        path = write_mp4(os.path.join(d, "clip.mp4"), result.frames, result.fps, result.waveform, result.sample_rate)
        return score_clip(*load_mp4(path), prompt)


def t2av_scores(pipe, seed: int, via_mp4: bool = False, **settings) -> List[dict]:
    """Scores of the 36 prompts at one noise seed (one batch; equal to generating them one by one)."""
    from ccl_core.generate import generate_many

    results = generate_many(pipe, PROMPTS, [seed] * len(PROMPTS), **settings)
    return [score_result(r, p, via_mp4) for p, r in zip(PROMPTS, results)]


def conditioned_scores(pipe, task: str, n: int, via_mp4: bool = False, **settings) -> List[dict]:
    """Scores of `task` ("a2v" or "v2a") on held-out clips HELD_OUT_SEED .. + n - 1 (noise seed i)."""
    from ccl_core.generate import generate

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


# ------------------------------------------------------------------ long clips, seams and i2av
I2AV_IMAGE_SEED = HELD_OUT_SEED + 500_000  # first frames given to i2av: ground truth of seeds no clip uses


def prompt_sample(count: int, seed: int = 0) -> List[str]:
    """`count` of the 36 prompts in a fixed shuffled order (any count covers colours, shapes and
    motions about evenly), for benchmarks too slow to run all of them."""
    import numpy as np

    if not 1 <= count <= len(PROMPTS):
        raise ValueError(f"the prompt count must be in 1..{len(PROMPTS)}, got {count}")
    order = np.random.default_rng(seed).permutation(len(PROMPTS))
    return [PROMPTS[i] for i in order[:count]]


def near(score: dict, time_s: float, radius_s: float) -> dict:
    """Sync recall of a scored clip over the picture events within `radius_s` of `time_s` (the
    events' interval midpoints): matched and counted events, to pool over clips."""
    import numpy as np

    from .metrics import MATCH_WINDOW_S

    events = np.asarray(score["picture_events"], dtype=float).reshape(-1, 2)
    offsets = np.abs(np.asarray(score["offsets_ms"], dtype=float)) / 1000.0
    inside = np.abs(events.mean(axis=1) - time_s) <= radius_s
    return {"events": int(inside.sum()), "matched": int((offsets[inside] <= MATCH_WINDOW_S).sum())}


def seam_continuity(frames, fps: float, waveform, sample_rate: int, seam_frame: int, span_s: float = 1.0) -> dict:
    """What a seam (the first frame a window made on its own) does to the clip: the object's jump
    there against its ordinary frame-to-frame steps, and the pitch of the sound before and after it."""
    import numpy as np

    from .metrics import PITCH_TOLERANCE, fundamental_hz, object_track

    track = object_track(frames)
    steps = np.linalg.norm(np.diff(track.centroids, axis=0), axis=1)  # steps[k]: frame k -> k + 1 (NaN: unseen)
    jump = float(steps[seam_frame - 1])
    ordinary = np.delete(steps, seam_frame - 1)
    ordinary = ordinary[np.isfinite(ordinary)]
    t = seam_frame / fps
    cut = round(t * sample_rate)
    width = round(span_s * sample_rate)
    before = fundamental_hz(np.asarray(waveform)[max(0, cut - width):cut], sample_rate)
    after = fundamental_hz(np.asarray(waveform)[cut:cut + width], sample_rate)
    same = bool(abs(after / before - 1.0) <= PITCH_TOLERANCE) if np.isfinite(before) and np.isfinite(after) else None
    return {"jump_px": jump, "ordinary_step_p95_px": float(np.percentile(ordinary, 95)) if len(ordinary) else np.nan,
            "pitch_before_hz": before, "pitch_after_hz": after, "pitch_same": same}


def i2av_image(index: int):
    """The ground-truth clip whose first frame is i2av's image number `index`, with the words of
    prompt_sample order's prompt `index % 36`: a clip of another seed, so the object starts where
    the noise seed would not put it. Blinking clips are redrawn until the object shows in frame 0."""
    from .world import parse_prompt

    colour, shape, motion = parse_prompt(prompt_sample(len(PROMPTS))[index % len(PROMPTS)])
    seed = I2AV_IMAGE_SEED + 1000 * index
    while True:
        clip = generate_clip(seed, colour, shape, motion)
        if clip.motion != "blinking" or not (clip.centroids[0] != clip.centroids[0]).any():
            return clip
        seed += 1


def start_reach_px(motion: str, seconds: float) -> float:
    """How far the world lets an object of `motion` move from its first frame within `seconds`:
    a drop from rest, the fastest slide, a still blink."""
    from . import world as w

    if motion == "bouncing":
        return 0.5 * w.GRAVITY_PX_S2 * seconds ** 2
    if motion == "sliding":
        return w.SLIDE_SPEED_RANGE_PX_S[1] * seconds
    return 0.0


def i2av_follows(frames, fps: float, image, clip, held_frames: int, slack_px: float = 2.0) -> dict:
    """Does a clip generated from `image` (the first frame of ground-truth `clip`) follow it, on the
    frames the model made itself (from `held_frames` on): the object's colour and shape, and where
    it starts: its first sighting within start_reach_px of the image's object, plus `slack_px`."""
    import numpy as np

    from .metrics import classify_shape, nearest_colour, object_track

    made = np.asarray(frames)[held_frames:]
    track = object_track(made)
    given = object_track(np.asarray(image)[None]).centroids[0]
    seen = np.flatnonzero(track.visible)
    start_at, start_frame = None, None
    if len(seen):
        k = int(seen[0])
        distance = float(np.linalg.norm(track.centroids[k] - given))
        reach = start_reach_px(clip.motion, (held_frames + k) / fps) + slack_px
        start_at, start_frame = [round(float(v), 2) for v in track.centroids[k]], held_frames + k
    else:
        distance, reach = float("nan"), 0.0
    colour, shape = nearest_colour(track.colour), classify_shape(made)
    start_ok = bool(distance <= reach)
    return {"colour": colour, "colour_ok": colour == clip.colour, "shape": shape, "shape_ok": shape == clip.shape,
            "start_distance_px": distance, "start_reach_px": reach, "start_ok": start_ok,
            # where (x, y) the image has the object, and where and in which frame the clip first shows it
            "image_at_px": [round(float(v), 2) for v in given], "start_at_px": start_at, "start_frame": start_frame,
            "follows": colour == clip.colour and shape == clip.shape and start_ok}
