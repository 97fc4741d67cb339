"""Image-to-audio-video on the embedded ToyAV model: does the clip start on the given image?

    python benchmarks/bench_toyav_i2av.py [--model FILE] [--clips 12] [--steps 25] [--threads 2]
        [--out docs/benchmarks/toyav_i2av.json]

Clip i: prompt i of evaluate.prompt_sample's order, noise seed i, and as its first frame the first
frame of a ground-truth clip with the same words but another seed (evaluate.i2av_image), so the
object starts where the noise would not put it. Measured:
- PSNR of the generated clip's first frame (decoded, in memory) against the given image (target >= 25 dB);
- on the frames the model made itself (after the held latent frame): the object's colour
  (metrics.nearest_colour), shape (metrics.classify_shape) and where it is first seen, within the
  distance the world lets it move since the image (evaluate.i2av_follows); target: all three in
  >= 95 % of clips;
- sync and the other ToyAV metrics as in t2av, on the mp4 the command line would write.
Chance level: the same measures on a ground-truth clip with the image's words and yet another seed
(what a clip that ignored the image but kept its words would score). Ceiling: the same measures on
the image's own ground-truth clip through the video autoencoder, its first latent frame replaced by
the still image's (what a model that drew the right latents would score).
"""

from __future__ import annotations

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ccl_core.generate import generate, image_latent  # noqa: E402
from ccl_lab import aggregate, generate_clip, parse_prompt  # noqa: E402
from ccl_lab.evaluate import (HELD_OUT_SEED, benchmark_parser, benchmark_pipeline, brief,  # noqa: E402
                              cli_guidance, i2av_follows, i2av_image, prompt_sample, score_result, settings_label,
                              write_result)
from ccl_lab.train_autoencoders import psnr  # noqa: E402

CHANCE_SEED = HELD_OUT_SEED + 700_000  # ground truth that ignores the image

PSNR_TARGET_DB = 25.0
FOLLOWS_TARGET = 0.95


@torch.no_grad()
def through_autoencoder(video_ae, frames: np.ndarray) -> np.ndarray:
    """Ground-truth `frames` [T, H, W, 3] encoded, the first latent frame replaced by the still
    first frame's (what i2av holds), and decoded: the ceiling of i2av_follows for this autoencoder."""
    clip = torch.from_numpy(frames)[None]
    z = video_ae.encode(clip)
    z[:, :, :1] = image_latent(video_ae, clip[:, 0])
    return video_ae.decode(z)[0].clamp(0, 1).numpy()


def share_by(rows, part: int) -> dict:
    """The share of rows whose start follows, grouped by part `part` of the prompt as
    world.parse_prompt splits it (0 the colour, 1 the shape, 2 the motion)."""
    groups = {}
    for row in rows:
        groups.setdefault(parse_prompt(row["prompt"])[part], []).append(row["start_ok"])
    return {key: round(float(np.mean(oks)), 4) for key, oks in sorted(groups.items())}


def main():
    ap = benchmark_parser(__doc__, "docs/benchmarks/toyav_i2av.json")
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--video-scale", type=float, default=None, help="UCG joint video scale (default: the CLI's)")
    ap.add_argument("--audio-scale", type=float, default=None, help="UCG joint audio scale (default: the CLI's)")
    args = ap.parse_args()
    pipe, guidance = benchmark_pipeline(args), cli_guidance(args.video_scale, args.audio_scale)
    prompts = prompt_sample(36)
    held = pipe.video_ae.temporal_factor  # pixel frames of the held first latent frame
    t0 = time.time()
    rows, scores, chance, ceiling = [], [], [], []
    for i in range(args.clips):
        clip = i2av_image(i)
        prompt = prompts[i % len(prompts)]
        assert clip.prompt == prompt
        image = torch.from_numpy(clip.frames[0])
        r = generate(pipe, prompt, seed=i, steps=args.steps, guidance=guidance, task="i2av", image=image)
        follows = i2av_follows(r.frames.numpy(), r.fps, clip.frames[0], clip, held)
        other = generate_clip(CHANCE_SEED + i, clip.colour, clip.shape, clip.motion)
        chance.append(i2av_follows(other.frames, r.fps, clip.frames[0], clip, held))
        ceiling.append(i2av_follows(through_autoencoder(pipe.video_ae, clip.frames), r.fps, clip.frames[0], clip, held))
        rows.append({"prompt": prompt, "psnr_db": round(psnr(r.frames[0], image), 2), **follows})
        scores.append(score_result(r, prompt, via_mp4=True))
        print(f"  {json.dumps(brief(rows[-1]))} ({time.time() - t0:.0f} s)", flush=True)
    mean = lambda key: round(float(np.mean([row[key] for row in rows])), 4)  # noqa: E731
    summary = {"clips": len(rows), "psnr_db_min": min(r["psnr_db"] for r in rows), "psnr_db_mean": mean("psnr_db"),
               "psnr_target_db": PSNR_TARGET_DB, "colour_follows": mean("colour_ok"), "shape_follows": mean("shape_ok"),
               "start_follows": mean("start_ok"), "all_follow": mean("follows"), "follows_target": FOLLOWS_TARGET,
               "start_distance_px_median": round(float(np.nanmedian([r["start_distance_px"] for r in rows])), 2),
               "chance_start_follows": round(float(np.mean([c["start_ok"] for c in chance])), 4),
               "chance_start_distance_px_median": round(float(np.nanmedian([c["start_distance_px"] for c in chance])), 2),
               "autoencoder_start_follows": round(float(np.mean([c["start_ok"] for c in ceiling])), 4),
               "autoencoder_all_follow": round(float(np.mean([c["follows"] for c in ceiling])), 4),
               # where the misses are: the start follows, per colour and per motion of the prompt
               "start_follows_by_colour": share_by(rows, 0), "start_follows_by_motion": share_by(rows, 2)}
    result = {"settings": {"model": args.model or "shipped", "clips": args.clips, "steps": args.steps,
                           "threads": args.threads, "score_on": "psnr and following in memory; sync on the mp4",
                           "guidance": settings_label(guidance)},
              "torch": torch.__version__, "i2av": summary, "sync": brief(aggregate(scores)),
              "per_clip": [{**brief(r), "image_at_px": r["image_at_px"], "start_at_px": r["start_at_px"]} for r in rows],
              "wall_s": round(time.time() - t0, 1)}
    print(json.dumps({"i2av": summary, "sync": result["sync"]}), flush=True)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
