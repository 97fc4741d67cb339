"""The embedded ToyAV model, measured: quality over the 36 prompts x 4 seeds, a2v / v2a, and speed.

    python benchmarks/bench_toyav.py [--seeds 4] [--steps 25] [--guidance joint] [--out docs/benchmarks/toyav.json]

Quality: every prompt with seeds 0..N-1 (--first-seed S: S..S+N-1, to tune settings on seeds the
reported figures do not use) through the default generator settings, scored with
ccl_lab.metrics (sync offset, recall, precision, colour, pitch, motion) on the mp4 the
command line would write, decoded again (--score-on memory: on the generated tensors instead).
a2v / v2a: the given stream is a held-out ground-truth clip's sound or picture, the model makes the
other one, and the pair is scored the same way (the given stream is the reference). Speed: one
2 s clip from the command line in a fresh process, model load included: wall time and peak memory.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from ccl_core.__main__ import add_sampling_arguments, guidance_from_args  # noqa: E402
from ccl_lab import PROMPTS, aggregate  # noqa: E402
from ccl_lab.evaluate import (benchmark_parser, benchmark_pipeline, brief, conditioned_scores,  # noqa: E402
                              t2av_scores, write_result)
from ccl_lab.metrics import summarize_by_seed  # noqa: E402

def quality(pipe, seeds, steps, guidance, sampler, shift, via_mp4, first_seed=0):
    by_seed = []
    t0 = time.time()
    for seed in range(first_seed, first_seed + seeds):
        scores = t2av_scores(pipe, seed, via_mp4, steps=steps, sampler=sampler, shift=shift, guidance=guidance)
        by_seed.append(scores)
        print(f"  seed {seed}: {json.dumps(brief(aggregate(scores)))} ({time.time() - t0:.0f} s)", flush=True)
    summary = summarize_by_seed(by_seed)
    return {"all": brief(summary["all"]), "spread_across_seeds": summary["spread_across_seeds"]}


def conditioned(pipe, task, n, steps, guidance, sampler, shift, via_mp4):
    return brief(aggregate(conditioned_scores(pipe, task, n, via_mp4, steps=steps, sampler=sampler, shift=shift,
                                               guidance=guidance)))



SPEED_SNIPPET = r"""
import sys, time, runpy
t0 = time.perf_counter()
sys.argv = ["ccl_core", "generate", "--prompt", "a red circle bouncing", "--out", sys.argv[1], "--quiet"] + sys.argv[2:]
try:
    runpy.run_module("ccl_core", run_name="__main__")
except SystemExit as e:
    assert not e.code, e.code
wall = time.perf_counter() - t0
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024
print(f"SPEED {wall:.2f} {peak:.0f}")
"""


def speed(extra_args, runs=3):
    walls, peaks = [], []
    with tempfile.TemporaryDirectory() as d:
        for i in range(runs):
            out = subprocess.run([sys.executable, "-c", SPEED_SNIPPET, os.path.join(d, f"s{i}.mp4"), *extra_args],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            line = [l for l in out.stdout.splitlines() if l.startswith("SPEED")][-1].split()
            walls.append(float(line[1]))
            peaks.append(float(line[2]))
    return {"wall_s_median": statistics.median(walls), "wall_s_runs": walls, "peak_rss_mb": max(peaks)}


def main():
    ap = benchmark_parser(__doc__, "docs/benchmarks/toyav.json")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="quality seeds start here (tune on seeds >= 4, report on 0..3)")
    add_sampling_arguments(ap)  # the command line's options and defaults
    ap.add_argument("--cond-clips", type=int, default=36)
    ap.add_argument("--score-on", choices=["mp4", "memory"], default="mp4",
                    help="score the written and decoded mp4 (what a user gets) or the generated tensors")
    ap.add_argument("--skip", action="append", default=[], choices=["quality", "conditioned", "speed"])
    args = ap.parse_args()
    pipe = benchmark_pipeline(args)
    via_mp4 = args.score_on == "mp4"
    g = guidance_from_args(args)
    result = {"settings": {k: getattr(args, k) for k in ("steps", "sampler", "shift", "guidance", "video_scale",
                                                          "audio_scale", "video_av_scale", "audio_av_scale",
                                                          "first_seed", "seeds", "threads", "score_on")},
              "torch": torch.__version__}
    if "quality" not in args.skip:
        print(f"quality: {len(PROMPTS)} prompts x {args.seeds} seeds", flush=True)
        result["t2av"] = quality(pipe, args.seeds, args.steps, g, args.sampler, args.shift, via_mp4, args.first_seed)
        print(json.dumps(result["t2av"]), flush=True)
    if "conditioned" not in args.skip:
        for task in ("a2v", "v2a"):
            result[task] = conditioned(pipe, task, args.cond_clips, args.steps, g, args.sampler, args.shift, via_mp4)
            print(task, json.dumps(result[task]), flush=True)
    if "speed" not in args.skip:
        extra = ["--threads", str(args.threads)] + (["--model", args.model] if args.model else [])
        result["speed"] = speed(extra)
        print("speed", json.dumps(result["speed"]), flush=True)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
