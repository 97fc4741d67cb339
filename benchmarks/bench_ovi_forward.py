"""Forward time of our model against Ovi's own FusionModel, same weights and inputs, one run.

    OVI_PATH=/path/to/Ovi python benchmarks/bench_ovi_forward.py

Needs an Ovi checkout (its code is imported, never vendored) and a Python with diffusers, as
tools/README_ovi_reference.md describes. Both models run in float32 on the CPU at the harness's
medium config (dim 512, 8 heads, 4 blocks per tower, 2304 video + 80 audio tokens); the timings are
interleaved (Ovi, ours, Ovi, ours, ...) so that load on the machine hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import ovi_reference as ref  # noqa: E402
from ccl_core.checkpoint import load_checkpoint  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ovi-path", default=os.environ.get("OVI_PATH"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not args.ovi_path:
        ap.error("give --ovi-path or set OVI_PATH")
    torch.set_num_threads(args.threads)
    ovi = ref.import_ovi(args.ovi_path)
    vcfg, acfg = ref.make_configs(**ref.MEDIUM)
    ovi_model = ref.build_model(ovi, vcfg, acfg, seed=0)
    inp = ref.make_inputs(vcfg, acfg, ref.MEDIUM_SHAPES, seed=0)

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.safetensors")
        save_file({k: v.contiguous() for k, v in ovi_model.state_dict().items()}, path)
        ours = load_checkpoint(path, overrides={"num_heads": ref.MEDIUM["num_heads"], "text_len": ref.MEDIUM["text_len"]})

    video, audio = inp["vid"], inp["aud"].transpose(1, 2).contiguous()
    vtext, atext = ref.pad_text(inp["vctx"], vcfg["text_len"]), ref.pad_text(inp["actx"], acfg["text_len"])
    sigma = inp["t"] / 1000.0

    def run_ours():
        with torch.no_grad():
            return ours(video, audio, sigma, None, vtext, text_audio=atext)

    def run_ovi():
        return ref.run_ovi(ovi, ovi_model, inp)

    ov, oa = run_ovi()
    mv, ma = run_ours()
    err = max(((mv - ov).norm() / ov.norm()).item(), ((ma - oa).norm() / oa.norm()).item())
    times = {"ovi": [], "ours": []}
    for _ in range(args.repeats):
        for name, fn in (("ovi", run_ovi), ("ours", run_ours)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    t_ovi, t_ours = statistics.median(times["ovi"]), statistics.median(times["ours"])
    n = sum(p.numel() for p in ours.parameters())
    print(f"medium config: {n / 1e6:.1f} M params, video tokens {inp['vid_seq_len']}, audio tokens "
          f"{inp['aud_seq_len']}, float32, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"max relative difference of the outputs: {err:.2e}")
    print("| implementation | forward, median of %d (s) |" % args.repeats)
    print("|---|---|")
    print(f"| Ovi FusionModel (reference) | {t_ovi:.3f} |")
    print(f"| ccl_core DualStreamModel | {t_ours:.3f} |")
    print(f"\nours / Ovi = {t_ours / t_ovi:.2f}")


if __name__ == "__main__":
    main()
