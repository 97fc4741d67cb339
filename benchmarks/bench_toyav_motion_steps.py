"""Does the embedded model move its objects smoothly, or in steps of one latent frame?

    python benchmarks/bench_toyav_motion_steps.py [--model FILE] [--seeds 1] [--scale 3] [--threads 2]
        [--out docs/benchmarks/toyav_motion_steps.json]

One latent video frame covers `temporal_factor` pixel frames (2 for ToyAV). For every bouncing and
sliding prompt (24 of the 36), t2av with noise seeds 0.., and ground truth of the same words
(held-out seeds), the object's centroid moves from frame to frame (metrics.motion_steps) by:
- "within": steps between two frames of the same latent frame;
- "across": steps from the last frame of one latent frame to the first of the next;
- "first": the step into the second latent frame (from the first latent frame's last frame), the
  step i2av's start is judged on (bench_toyav_i2av.py: a drop from rest falls 3.1 px by then).
The world moves objects smoothly, so ground truth has about as large steps within as across; a
model that draws the object once per latent frame has steps across several times those within.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ccl_core.generate import generate  # noqa: E402
from ccl_lab import generate_clip, parse_prompt  # noqa: E402
from ccl_lab.evaluate import (HELD_OUT_SEED, PROMPTS, benchmark_parser, benchmark_pipeline, cli_guidance,  # noqa: E402
                              settings_label, write_result)
from ccl_lab.metrics import motion_steps  # noqa: E402

MOTIONS = ("bouncing", "sliding")  # blinking objects do not move


def summary(rows: list) -> dict:
    pooled = {k: [s for row in rows for s in row[k]] for k in ("within", "across", "first")}
    mean = {k: float(np.mean(v)) if v else float("nan") for k, v in pooled.items()}
    return {"clips": len(rows), "step_within_px": round(mean["within"], 2), "step_across_px": round(mean["across"], 2),
            "across_over_within": round(mean["across"] / mean["within"], 2), "first_step_px": round(mean["first"], 2)}


def main():
    ap = benchmark_parser(__doc__, "docs/benchmarks/toyav_motion_steps.json")
    ap.add_argument("--seeds", type=int, default=1, help="noise seeds per prompt")
    ap.add_argument("--scale", type=float, default=None, help="UCG joint video and audio scale (default: the CLI's)")
    args = ap.parse_args()
    pipe, guidance = benchmark_pipeline(args), cli_guidance(args.scale, args.scale)
    per_latent = pipe.video_ae.temporal_factor
    prompts = [p for p in PROMPTS if parse_prompt(p)[2] in MOTIONS]
    made, truth = {m: [] for m in MOTIONS}, {m: [] for m in MOTIONS}
    for i, prompt in enumerate(prompts):
        colour, shape, motion = parse_prompt(prompt)
        for seed in range(args.seeds):
            r = generate(pipe, prompt, seed=seed, steps=args.steps, guidance=guidance)
            made[motion].append(motion_steps(r.frames.numpy(), per_latent))
            clip = generate_clip(HELD_OUT_SEED + 1000 * i + seed, colour, shape, motion)
            truth[motion].append(motion_steps(clip.frames, per_latent))
        print(f"  {prompt}: {summary(made[motion][-args.seeds:])}", flush=True)
    result = {"settings": {"model": args.model or "shipped", "prompts": len(prompts), "seeds": args.seeds,
                           "steps": args.steps, "frames_per_latent_frame": per_latent,
                           "guidance": settings_label(guidance)},
              "torch": torch.__version__,
              "generated": {m: summary(made[m]) for m in MOTIONS},
              "ground_truth": {m: summary(truth[m]) for m in MOTIONS}}
    print({k: result[k] for k in ("generated", "ground_truth")}, flush=True)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
