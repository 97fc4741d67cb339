"""Long clips made in windows, measured at their seams: a 10 s clip in 5 windows of 2.5 s, each
continuing the clip from its last 0.5 s (`generate_long`, DCR task "extend").

    python benchmarks/bench_toyav_seams.py [--model FILE] [--seconds 10] [--window 2.5] [--overlap 0.5]
        [--prompts 4] [--seeds 1] [--steps 25] [--threads 2] [--out docs/benchmarks/toyav_seams.json]

A seam is the first frame a window made on its own (the end of the overlap it was given). Per seam,
pooled over the clips: sync recall over the picture events within +-0.5 s of it, against the
recall over all the clips' events (target: >= that average - 0.1); the object's jump across it
against the 95th percentile of its ordinary frame-to-frame steps in the same clip (the ToyAV
tracker, metrics.object_track); the pitch of the second before and the second after it (same
within metrics.PITCH_TOLERANCE). Clips are scored on the mp4 the command line would write.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ccl_core.generate import generate_long, window_plan  # noqa: E402
from ccl_core.media import write_mp4  # noqa: E402
from ccl_lab import aggregate, load_mp4, score_clip  # noqa: E402
from ccl_lab.evaluate import (benchmark_parser, benchmark_pipeline, brief, cli_guidance, near,  # noqa: E402
                              prompt_sample, seam_continuity, write_result)

SEAM_RADIUS_S = 0.5
RECALL_MARGIN = 0.1  # a seam's recall may fall this far under the clips' average



def main():
    ap = benchmark_parser(__doc__, "docs/benchmarks/toyav_seams.json")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--window", type=float, default=2.5)
    ap.add_argument("--overlap", type=float, default=0.5)
    ap.add_argument("--prompts", type=int, default=4, help="how many of the 36 prompts (fixed shuffled order)")
    ap.add_argument("--seeds", type=int, default=1, help="noise seeds 0..N-1 per prompt")
    args = ap.parse_args()
    pipe, guidance = benchmark_pipeline(args), cli_guidance()
    prompts = prompt_sample(args.prompts)
    plan = window_plan(pipe, args.seconds, args.window, args.overlap)
    # window i >= 1 makes frames of its own from the end of window i - 1 (in latent frames)
    seam_frames = [(first + size) * pipe.video_ae.temporal_factor for first, size in plan[:-1]]
    t0 = time.time()
    scores, per_seam = [], [[] for _ in seam_frames]
    with tempfile.TemporaryDirectory() as d:
        for prompt in prompts:
            for seed in range(args.seeds):
                r = generate_long(pipe, prompt, args.seconds, args.window, args.overlap, seed=seed, steps=args.steps,
                                  guidance=guidance)
                path = write_mp4(os.path.join(d, "clip.mp4"), r.frames, r.fps, r.waveform, r.sample_rate,
                                 overwrite=True)
                frames, fps, wave, rate = load_mp4(path)
                score = score_clip(frames, fps, wave, rate, prompt)
                scores.append(score)
                for i, f in enumerate(seam_frames):
                    per_seam[i].append({**near(score, f / fps, SEAM_RADIUS_S),
                                        **seam_continuity(frames, fps, wave, rate, f)})
                print(f"  {prompt!r} seed {seed}: recall {score['recall']:.2f} ({time.time() - t0:.0f} s)", flush=True)
    overall = aggregate(scores)
    events = sum(len(s["picture_events"]) for s in scores)
    matched = sum(int(np.sum(np.abs(np.asarray(s["offsets_ms"])) <= 100.0)) for s in scores)
    pooled_recall = matched / events if events else float("nan")
    rows = []
    for i, (f, entries) in enumerate(zip(seam_frames, per_seam)):
        ev, mt = sum(e["events"] for e in entries), sum(e["matched"] for e in entries)
        recall = mt / ev if ev else float("nan")
        jumps = [e["jump_px"] for e in entries if np.isfinite(e["jump_px"])]
        smooth = [e["jump_px"] <= e["ordinary_step_p95_px"] for e in entries
                  if np.isfinite(e["jump_px"]) and np.isfinite(e["ordinary_step_p95_px"])]
        pitch = [e["pitch_same"] for e in entries if e["pitch_same"] is not None]
        rows.append({"seam_s": round(f / pipe.video_fps, 3), "events_near": ev, "recall_near": round(recall, 4),
                     "recall_ok": bool(recall >= pooled_recall - RECALL_MARGIN) if ev else None,
                     "jump_px_mean": round(float(np.mean(jumps)), 2) if jumps else None,
                     "ordinary_step_p95_px_mean": round(float(np.nanmean([e["ordinary_step_p95_px"] for e in entries])), 2),
                     "jump_within_ordinary": round(float(np.mean(smooth)), 4) if smooth else None,
                     "pitch_same": round(float(np.mean(pitch)), 4) if pitch else None, "pitch_measured": len(pitch)})
        print("seam", json.dumps(rows[-1]), flush=True)
    result = {"settings": {"model": args.model or "shipped", "seconds": args.seconds, "window": args.window,
                           "overlap": args.overlap, "windows": plan, "prompts": prompts, "seeds": args.seeds,
                           "steps": args.steps, "threads": args.threads, "score_on": "mp4",
                           "seam_radius_s": SEAM_RADIUS_S, "recall_margin": RECALL_MARGIN},
              "torch": torch.__version__, "clips": brief(overall), "recall_pooled": round(pooled_recall, 4),
              "seams": rows, "wall_s": round(time.time() - t0, 1)}
    print(json.dumps({k: result[k] for k in ("clips", "recall_pooled")}), flush=True)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
