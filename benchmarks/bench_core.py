"""Core benchmark: model forward (time, peak memory) and cross-modal attention cost vs clip length.

    python benchmarks/bench_core.py            # CPU, prints markdown tables
    python benchmarks/bench_core.py --device cuda

Attention is measured at Ovi's latent rates (6 video latent frames/s, 31.25 audio latents/s) with
reduced width and frame size so that CPU runs finish; the scaling with duration is what matters.
Each figure is the median of several runs, each in float32 on the CPU unless --device says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from memory import peak_rss_mb, rss_mb  # noqa: E402

import torch  # noqa: E402

from ccl_core import DualStreamModel, ModelConfig  # noqa: E402
from ccl_core.tarp import Partition, cross_modal_attention, dense_cross_modal_attention  # noqa: E402

FORWARD_CONFIGS = {
    # name: (config fields, video latent [C, T, H, W], audio latents L, batch)
    "small": (dict(dim=128, ffn_dim=512, num_heads=2, num_layers=4, freq_dim=64, text_dim=64, text_len=16,
                   video_channels=8, audio_channels=8, video_latent_fps=4.0, audio_latent_rate=62.5,
                   n_ctx=8, tarp_window=2), (8, 8, 16, 16), 125, 2),
    "medium": (dict(dim=512, ffn_dim=2048, num_heads=8, num_layers=8, freq_dim=128, text_dim=256, text_len=32,
                    video_channels=16, audio_channels=20, video_latent_fps=6.0, audio_latent_rate=31.25,
                    n_ctx=8, tarp_window=2), (16, 31, 16, 16), 157, 1),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats=5, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def forward_one(name: str, device: str, dtype: str) -> dict:
    """Run in a fresh process so that the peak-memory reading belongs to this config alone."""
    fields, vshape, audio_len, batch = FORWARD_CONFIGS[name]
    dev = torch.device(device)
    dt = getattr(torch, dtype)
    cfg = ModelConfig(name=name, **fields)
    model = DualStreamModel(cfg).to(dev, dt).eval()
    g = torch.Generator().manual_seed(0)
    video = torch.randn(batch, *vshape, generator=g).to(dev, dt)
    audio = torch.randn(batch, cfg.audio_channels, audio_len, generator=g).to(dev, dt)
    text = torch.randn(batch, cfg.text_len, cfg.text_dim, generator=g).to(dev, dt)
    t = torch.full((batch,), 0.5, device=dev)
    params = sum(p.numel() for p in model.parameters())

    def run():
        with torch.no_grad():
            model(video, audio, t, None, text)

    run()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_mb()
    sec = timed(run, dev, repeats=5, warmup=1)
    if dev.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = peak_rss_mb() - base
    tokens = (vshape[1] * vshape[2] * vshape[3] // 4, audio_len)
    return dict(name=name, params=params, batch=batch, tokens=tokens, seconds=sec, peak_mb=peak,
                weights_mb=params * torch.finfo(dt).bits / 8 / 2**20)


def attention_scaling(device: str, seconds_list=(2, 5, 10, 20), heads=4, head_dim=64, spatial=64,
                      n_ctx=8, window=2, repeats=5):
    """Cross-modal attention both ways (video reads audio, audio reads video) vs clip length."""
    dev = torch.device(device)
    rows = []
    for sec in seconds_list:
        frames = 1 + round(sec * 6)  # Wan 2.2 VAE: 1 + 4k frames at 24 fps -> 6 latent fps
        audio = round(sec * 31.25)
        g = torch.Generator().manual_seed(sec)
        q_v = torch.randn(1, frames * spatial, heads, head_dim, generator=g).to(dev)
        q_a = torch.randn(1, audio, heads, head_dim, generator=g).to(dev)
        kc, vc = (torch.randn(n_ctx, heads, head_dim, generator=g).to(dev) for _ in range(2))
        pos_v = torch.arange(frames, dtype=torch.float64, device=dev).repeat_interleave(spatial)
        pos_a = torch.arange(audio, dtype=torch.float64, device=dev) * (6 / 31.25)
        p_va, p_av = Partition.build(pos_v, pos_a, window), Partition.build(pos_a, pos_v, window)

        def partitioned():
            cross_modal_attention(q_v, q_a, q_a, kc, vc, None, None, p_va)
            cross_modal_attention(q_a, q_v, q_v, kc, vc, None, None, p_av)

        def full():
            cross_modal_attention(q_v, q_a, q_a, kc, vc, None, None, None)
            cross_modal_attention(q_a, q_v, q_v, kc, vc, None, None, None)

        def dense_mask():
            dense_cross_modal_attention(q_v, q_a, q_a, kc, vc, None, None, pos_v, pos_a, window)
            dense_cross_modal_attention(q_a, q_v, q_v, kc, vc, None, None, pos_a, pos_v, window)

        with torch.no_grad():
            rows.append(dict(seconds=sec, video_tokens=q_v.shape[1], audio_tokens=audio,
                             partitioned=timed(partitioned, dev, repeats), full=timed(full, dev, repeats),
                             dense_mask=timed(dense_mask, dev, repeats)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["forward", "attention"], default=None)
    ap.add_argument("--_forward", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args._forward:
        r = forward_one(args._forward, args.device, args.dtype)
        print(json.dumps(r))
        return

    print(f"device: {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, dtype {args.dtype}\n")
    if args.only in (None, "forward"):
        print("| config | params | batch | video / audio tokens | forward (s) | peak extra memory (MB) |")
        print("|---|---|---|---|---|---|")
        for name in FORWARD_CONFIGS:
            out = subprocess.run([sys.executable, __file__, "--_forward", name, "--device", args.device,
                                  "--dtype", args.dtype, "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])  # the child's result, its last line
            print(f"| {r['name']} | {r['params'] / 1e6:.1f} M | {r['batch']} | {r['tokens'][0]} / {r['tokens'][1]} "
                  f"| {r['seconds']:.3f} | {r['peak_mb']:.0f} |")
        print()
    if args.only in (None, "attention"):
        rows = attention_scaling(args.device)
        print("Cross-modal attention, both directions, 4 heads x 64, 64 video tokens per latent frame, "
              "8 context tokens, window 2 latent frames (ms):\n")
        print("| clip | video / audio tokens | partitioned (TARP) | full attention (Ovi) | dense-mask reference |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['seconds']} s | {r['video_tokens']} / {r['audio_tokens']} | {1e3 * r['partitioned']:.1f} "
                  f"| {1e3 * r['full']:.1f} | {1e3 * r['dense_mask']:.1f} |")
        by = {r["seconds"]: r for r in rows}
        if 5 in by and 20 in by:
            for key in ("partitioned", "full", "dense_mask"):
                ratio = by[20][key] / by[5][key]
                print(f"\n{key}: 20 s / 5 s = {ratio:.2f} (linear = 4, quadratic = 16)", end="")
            print()


if __name__ == "__main__":
    main()
