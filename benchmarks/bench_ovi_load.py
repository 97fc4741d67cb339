"""Loading a large Ovi-layout checkpoint: time and peak resident memory against the weights' size.

    python benchmarks/bench_ovi_load.py --path /tmp/ovi_synth.safetensors --layers 2

Makes (once) a synthetic checkpoint with Ovi's exact key names and full width (3072) at reduced
depth, in bf16 (about 2.7 GB at 2 layers), then loads it in fresh processes with each weight dtype
and reports wall time, the peak resident memory the load added over the process before loading,
and that peak as a multiple of the loaded weights' size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from memory import peak_rss_mb, rss_mb  # noqa: E402


def make(path: str, layers: int) -> None:
    import torch
    from safetensors.torch import save_file

    from ccl_core import DualStreamModel, ovi_config

    with torch.device("meta"):
        model = DualStreamModel(ovi_config(num_layers=layers))
    g = torch.Generator().manual_seed(0)
    state = {}
    for name, p in model.state_dict().items():
        t = torch.empty(p.shape, dtype=torch.bfloat16)
        t.normal_(0, 0.02, generator=g)
        state[name] = t
    save_file(state, path)  # no metadata, as Ovi's files
    print(f"wrote {path}: {os.path.getsize(path) / 2**30:.2f} GiB, {len(state)} tensors")


def load_once(path: str, dtype: str) -> None:
    import torch

    from ccl_core.checkpoint import load_checkpoint

    torch.set_num_threads(2)
    base = rss_mb()
    t0 = time.perf_counter()
    model = load_checkpoint(path, dtype=None if dtype == "stored" else dtype)
    sec = time.perf_counter() - t0
    peak = peak_rss_mb()
    weights = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    print(json.dumps(dict(dtype=dtype, seconds=sec, base_mb=base, peak_mb=peak, weights_mb=weights,
                      kind=model.checkpoint_kind, layers=model.config.num_layers)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", default="/tmp/ccl_bench_ovi_synth.safetensors")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dtypes", default="stored,fp8")
    ap.add_argument("--_load", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._load:
        load_once(args.path, args._load)
        return
    if not os.path.exists(args.path):
        make(args.path, args.layers)
    size = os.path.getsize(args.path) / 2**20
    print(f"\nfile: {size / 1024:.2f} GiB ({args.layers} blocks per tower, width 3072, bf16, Ovi key names)\n")
    print("| weight dtype | load time (s) | weights in memory (MB) | peak added by loading (MB) | peak / weights |")
    print("|---|---|---|---|---|")
    for dtype in args.dtypes.split(","):
        out = subprocess.run([sys.executable, __file__, "--path", args.path, "--_load", dtype],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])  # the child's result, its last line
        added = r["peak_mb"] - r["base_mb"]
        print(f"| {r['dtype']} | {r['seconds']:.1f} | {r['weights_mb']:.0f} | {added:.0f} | {added / r['weights_mb']:.3f} |")


if __name__ == "__main__":
    main()
