"""What training on longer ToyAV clips costs (train_embedded --durations): one joint training step of
the embedded model's recipe at each clip length, and encoding clips of each length.

    python benchmarks/bench_toyav_durations.py [--durations 2 4] [--batch 16] [--repeats 10]
        [--encode-clips 100] [--threads 1] [--out docs/benchmarks/toyav_durations.json]

Step: the recipe's joint stage (DCR task mix, batch --batch, the shipped model's config) on latents of
the lengths a clip of that duration encodes to (data.clip_latents); the durations are timed in turn in
this one process, so that each sees the same machine load; median over --repeats after one warm-up
round. Encode: --encode-clips clips of each length drawn and encoded by data.encode_clips (the shipped
autoencoders), reported per 100 clips.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from ccl_core.model import DualStreamModel  # noqa: E402
from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae  # noqa: E402
from ccl_lab.data import clip_latents, encode_clips  # noqa: E402
from ccl_lab.evaluate import write_result  # noqa: E402
from ccl_core.toyav.embedded import toyav_config  # noqa: E402
from ccl_core.toyav.text import load_text_encoder  # noqa: E402
from ccl_lab.train_embedded import stage_train_config  # noqa: E402


def step_seconds(durations, batch, repeats, video_ae, audio_ae, text_encoder):
    """Median wall time of one joint training step per duration, the durations timed in turn."""
    from ccl_train import Trainer

    cfg = toyav_config(video_ae, audio_ae, text_encoder)
    torch.manual_seed(0)
    joint = stage_train_config("joint", 10_000, 1e-3, overrides={"timestep_shift": 3.0})  # the recipe's stage
    trainer = Trainer(DualStreamModel(cfg), joint, device="cpu")
    g = torch.Generator().manual_seed(0)
    batches = {}
    for s in durations:
        frames, audio = clip_latents(s, video_ae, audio_ae, cfg.video_patch[0])
        batches[s] = {"video": torch.randn(batch, *video_ae.latent_shape(frames=frames * video_ae.temporal_factor),
                                           generator=g),
                      "audio": torch.randn(batch, audio_ae.latent_channels, audio, generator=g),
                      "text": torch.randn(batch, cfg.text_len, cfg.text_dim, generator=g),
                      "null_text": text_encoder.null(1)}
    times = {s: [] for s in durations}
    for i in range(repeats + 1):
        for s in durations:
            t0 = time.perf_counter()
            trainer.step(batches[s])
            if i:  # the first round warms up
                times[s].append(time.perf_counter() - t0)
    return {s: statistics.median(t) for s, t in times.items()}


def encode_seconds(durations, n, video_ae, audio_ae, text_encoder):
    out = {}
    for s in durations:
        t0 = time.perf_counter()
        encode_clips(n, 0, video_ae, audio_ae, text_encoder, seconds=s)
        out[s] = time.perf_counter() - t0
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--durations", type=float, nargs="+", default=[2.0, 4.0])
    ap.add_argument("--batch", type=int, default=16, help="the recipe's batch")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--encode-clips", type=int, default=100, help="clips encoded per length; 0 skips it")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the figures as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    video_ae, audio_ae, text_encoder = load_video_ae(), load_audio_ae(), load_text_encoder()
    steps = step_seconds(args.durations, args.batch, args.repeats, video_ae, audio_ae, text_encoder)
    base = args.durations[0]
    result = {"settings": {"durations": args.durations, "batch": args.batch, "repeats": args.repeats,
                           "threads": args.threads, "encode_clips": args.encode_clips},
              "torch": torch.__version__,
              "step_s": {f"{s:g}s": round(t, 4) for s, t in steps.items()},
              "step_ratio": {f"{s:g}s": round(t / steps[base], 2) for s, t in steps.items()}}
    print("step", json.dumps(result["step_s"]), json.dumps(result["step_ratio"]), flush=True)
    if args.encode_clips:
        enc = encode_seconds(args.durations, args.encode_clips, video_ae, audio_ae, text_encoder)
        result["encode_s_per_100_clips"] = {f"{s:g}s": round(t * 100 / args.encode_clips, 1) for s, t in enc.items()}
        print("encode per 100 clips", json.dumps(result["encode_s_per_100_clips"]), flush=True)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
