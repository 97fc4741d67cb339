"""The embedded ToyAV model on clips longer than it was trained on (2 s): the ToyAV metrics at 2, 4
and 8 s, and the cost of one sampling step at 8 s against one at 2 s.

    python benchmarks/bench_toyav_long.py [--model FILE] [--durations 2 4 8] [--prompts 12] [--seeds 1]
        [--steps 25] [--threads 2] [--self-attn-window FRAMES] [--out docs/benchmarks/toyav_long.json]

Quality: `--prompts` of the 36 prompts (evaluate.prompt_sample's fixed order) x `--seeds` noise
seeds at each duration, generated with the command line's default settings and scored on the mp4
(ccl_lab.metrics over the whole clip). The world's own ground-truth clips of each length
(held-out seeds, same prompts) are scored too: they must score perfectly, which checks that the
metrics find events over the whole clip. Speed: one guided step (all guidance branches in one
batched model call, what each sampling step runs) at 8 s and at 2 s, timed alternately in this one
process so that both see the same machine load; median over --step-repeats. Target: <= 4.5x.
`--self-attn-window` replaces the model's window (ccl_core/self_windows.py) for a sweep: 0 runs
full attention, as the files written before windows do.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from ccl_core.generate import clip_lengths, generate  # noqa: E402
from ccl_core.guidance import guided_velocity  # noqa: E402
from ccl_lab import aggregate, generate_clip, parse_prompt, score_clip  # noqa: E402
from ccl_lab.evaluate import (HELD_OUT_SEED, benchmark_parser, benchmark_pipeline, brief,  # noqa: E402
                              cli_guidance, prompt_sample, score_result, settings_label,
                              write_result)

STEP_RATIO_TARGET = 4.5



def quality(pipe, seconds, prompts, seeds, settings):
    scores, truth = [], []
    for prompt in prompts:
        for seed in seeds:
            r = generate(pipe, prompt, seed=seed, seconds=seconds, **settings)
            scores.append(score_result(r, prompt, via_mp4=True))
        colour, shape, motion = parse_prompt(prompt)
        clip = generate_clip(HELD_OUT_SEED + len(truth), colour, shape, motion, seconds=seconds)
        truth.append(score_clip(clip.frames, 16.0, clip.waveform, 16000, clip.prompt))
    return {"generated": brief(aggregate(scores)), "ground_truth": brief(aggregate(truth))}


def step_seconds(pipe, seconds_list, repeats, guidance):
    """Median wall time of one guided step per duration, the durations timed in turn."""
    device = pipe.model.device
    text, _ = pipe.text_encoder.encode(["a red circle bouncing"])
    uncond, _ = pipe.text_encoder.encode([""])
    inputs = {}
    for s in seconds_list:
        frames, audio = clip_lengths(pipe, s)
        vshape = pipe.video_ae.latent_shape(frames=frames * pipe.video_ae.temporal_factor)
        ashape = pipe.audio_ae.latent_shape(samples=audio * pipe.audio_ae.hop)
        inputs[s] = (torch.randn(1, *vshape, device=device), torch.randn(1, *ashape, device=device))
    times = {s: [] for s in seconds_list}
    with torch.no_grad():
        for i in range(repeats + 1):
            for s in seconds_list:
                v, a = inputs[s]
                t0 = time.perf_counter()
                guided_velocity(pipe.model, v, a, 0.5, None, text, uncond, guidance, tasks="t2av")
                if i:  # the first round warms up
                    times[s].append(time.perf_counter() - t0)
    return {s: statistics.median(t) for s, t in times.items()}


def main():
    ap = benchmark_parser(__doc__, "docs/benchmarks/toyav_long.json")
    ap.add_argument("--durations", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    ap.add_argument("--prompts", type=int, default=12, help="how many of the 36 prompts (fixed shuffled order)")
    ap.add_argument("--seeds", type=int, default=1, help="noise seeds 0..N-1 per prompt")
    ap.add_argument("--step-repeats", type=int, default=10)
    ap.add_argument("--skip", action="append", default=[], choices=["quality", "speed"])
    ap.add_argument("--self-attn-window", type=int, default=None, metavar="FRAMES",
                    help="replace the model's self-attention window (latent frames; 0: full attention)")
    args = ap.parse_args()
    if args.self_attn_window is not None and args.self_attn_window < 0:
        ap.error(f"--self-attn-window must be >= 0 latent frames (0: full attention), got {args.self_attn_window}")
    overrides = None if args.self_attn_window is None else {"self_attn_window": args.self_attn_window or None}
    pipe, guidance = benchmark_pipeline(args, overrides), cli_guidance()
    settings = dict(steps=args.steps, guidance=guidance)
    prompts = prompt_sample(args.prompts)
    result = {"settings": {"model": args.model or "shipped", "durations": args.durations, "prompts": prompts,
                           "seeds": args.seeds, "steps": args.steps, "threads": args.threads,
                           "self_attn_window": pipe.model.config.self_attn_window,
                           "score_on": "mp4", "guidance": settings_label(guidance)},
              "torch": torch.__version__}
    t0 = time.time()
    if "quality" not in args.skip:
        result["quality"] = {}
        for seconds in args.durations:
            result["quality"][f"{seconds:g}s"] = quality(pipe, seconds, prompts, range(args.seeds), settings)
            print(f"{seconds:g} s: {json.dumps(result['quality'][f'{seconds:g}s'])} ({time.time() - t0:.0f} s)",
                  flush=True)
    if "speed" not in args.skip:
        per = step_seconds(pipe, [2.0, 8.0], args.step_repeats, guidance)
        ratio = per[8.0] / per[2.0]
        result["step"] = {"2s_s": round(per[2.0], 4), "8s_s": round(per[8.0], 4), "ratio_8s_to_2s": round(ratio, 2),
                          "target_ratio": STEP_RATIO_TARGET, "met": ratio <= STEP_RATIO_TARGET,
                          "repeats": args.step_repeats}
        print("step", json.dumps(result["step"]), flush=True)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
