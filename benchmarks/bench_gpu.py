"""GPU checks and timings at Ovi's full size (random weights): memory of bf16 / fp8 / block swap,
forward time, UCG's batched branches, TARP on the GPU, and the Ovi parity fixture on CUDA.

    python benchmarks/bench_gpu.py [--out results.json] [--layers 30]

Needs one CUDA GPU with about 40 GB (the full 11.7 B model in bf16 plus activations). Each section
prints as it finishes; a section that fails prints its error and the rest still run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # tarp_reference.dense_tarp

import torch  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from ccl_core import DualStreamModel, ovi_config  # noqa: E402
from ccl_core.guidance import Guidance, guided_velocity  # noqa: E402
from ccl_core.offload import BlockSwap  # noqa: E402

GB = 2**30
RESULTS = {}


def section(name):
    def wrap(fn):
        def run(*a, **k):
            t0 = time.perf_counter()
            try:
                RESULTS[name] = fn(*a, **k)
            except Exception as e:  # report and go on: one failing check must not hide the others
                traceback.print_exc()
                RESULTS[name] = {"error": f"{type(e).__name__}: {e}"}
            RESULTS[name]["section_seconds"] = round(time.perf_counter() - t0, 1) \
                if isinstance(RESULTS[name], dict) else None
            print(f"== {name}: {json.dumps(RESULTS[name])}", flush=True)
        return run
    return wrap


def timed(fn, repeats=3):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def random_model(cfg, device="cuda", dtype=torch.bfloat16):
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = DualStreamModel(cfg)
    finally:
        torch.set_default_dtype(prev)
    model.to_empty(device=device)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and p.ndim == 1:
                p.fill_(1.0)
            else:
                p.normal_(0, 0.02)
    return model.eval()


def ovi_inputs(seconds=5, height=44, width=80, batch=1, device="cuda", dtype=torch.bfloat16):
    frames = 1 + round(seconds * 6)
    audio = round(seconds * 31.4)
    g = torch.Generator(device=device).manual_seed(0)
    return dict(
        video=torch.randn(batch, 48, frames, height, width, device=device, dtype=dtype, generator=g),
        audio=torch.randn(batch, 20, audio, device=device, dtype=dtype, generator=g),
        text=torch.randn(batch, 512, 4096, device=device, dtype=dtype, generator=g),
    )


def forward(model, x, **kw):
    with torch.no_grad():
        return model(x["video"], x["audio"], 0.7, None, x["text"], **kw)


@section("parity_fixture_cuda_fp32")
def parity_on_cuda():
    from safetensors import safe_open

    from ccl_core.checkpoint import load_checkpoint
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    fix = os.path.join(ROOT, "tests", "fixtures")
    model = load_checkpoint(os.path.join(fix, "ovi_tiny.safetensors"), device="cuda",
                            overrides={"num_heads": 2, "text_len": 16})
    with safe_open(os.path.join(fix, "ovi_tiny_io.safetensors"), "pt", device="cuda") as f:
        io = {k: f.get_tensor(k) for k in f.keys()}
    with torch.no_grad():
        v, a = model(io["in.video"], io["in.audio"], io["in.t"] / 1000, None, io["in.vid_context"],
                     text_audio=io["in.audio_context"])
        vs, as_ = model(io["in.video"], io["in.audio"], io["in.t"] / 1000, None, io["in.vid_context"],
                        text_audio=io["in.audio_context"], skip_block=2)
    rel = lambda x, y: ((x - y).norm() / y.norm()).item()
    # TARP fast path (key-channel offsets, flash-eligible) against the dense-mask reference, on CUDA
    from ccl_core import tiny_config
    from tarp_reference import dense_tarp
    tiny = DualStreamModel(tiny_config(num_heads=2, dim=64, n_ctx=4, tarp_window=2)).cuda()
    with torch.no_grad():
        for p in tiny.parameters():
            p.normal_(0, 0.2)
        g = torch.Generator(device="cuda").manual_seed(0)
        vv, aa = torch.randn(4, 4, 8, 8, 8, device="cuda", generator=g), torch.randn(4, 3, 32, device="cuda", generator=g)
        tt = torch.randn(4, 5, 16, device="cuda", generator=g)
        kw = dict(tasks=["t2av", "a2v", "v2a", "t2av"], ctx_only=torch.tensor([False, False, False, True]))
        fast = tiny(vv, aa, 0.6, None, tt, **kw)
        with dense_tarp():
            dense = tiny(vv, aa, 0.6, None, tt, **kw)
    tarp_err = max((f - d).abs().max().item() for f, d in zip(fast, dense))
    return {"tarp_fast_vs_dense_max_abs": tarp_err,"video_rel_err": rel(v, io["out.full.video"]), "audio_rel_err": rel(a, io["out.full.audio"]),
            "slg_video_rel_err": rel(vs, io["out.slg2.video"]), "slg_audio_rel_err": rel(as_, io["out.slg2.audio"])}


@section("ovi_bf16_full_size")
def bf16_full(layers):
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = random_model(ovi_config(num_layers=layers))
    weights = torch.cuda.memory_allocated() / GB
    x = ovi_inputs()
    torch.cuda.reset_peak_memory_stats()
    sec = timed(lambda: forward(model, x))
    peak = torch.cuda.max_memory_allocated() / GB
    out = {"params_B": sum(p.numel() for p in model.parameters()) / 1e9, "weights_GB": weights,
           "forward_s_5s_704x1280": sec, "peak_GB": peak,
           "video_tokens": x["video"].shape[2] * x["video"].shape[3] * x["video"].shape[4] // 4,
           "audio_tokens": x["audio"].shape[2]}
    # UCG decoupled: three branches in one batch; Ovi-style guidance: two
    for form in ("decoupled", "ovi"):
        g = Guidance(form)
        null = torch.zeros_like(x["text"][:, :8])
        torch.cuda.reset_peak_memory_stats()
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):  # no silent math fallback
            out[f"guided_{form}_s"] = timed(lambda: guided_velocity(model, x["video"], x["audio"], 0.7, None,
                                                                    x["text"], null, g), repeats=2)
        out[f"guided_{form}_peak_GB"] = torch.cuda.max_memory_allocated() / GB
    model = None  # free the GPU memory before the next section
    torch.cuda.empty_cache()
    return out


@section("ovi_fp8_full_size")
def fp8_full(layers):
    torch.cuda.empty_cache()
    model = random_model(ovi_config(num_layers=layers))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".weight") and ".blocks." in name and "norm" not in name:
                p.data = p.data.to(torch.float8_e4m3fn)
    torch.cuda.empty_cache()
    weights = torch.cuda.memory_allocated() / GB
    x = ovi_inputs()
    torch.cuda.reset_peak_memory_stats()
    sec = timed(lambda: forward(model, x))
    out = {"weights_GB": weights, "forward_s": sec, "peak_GB": torch.cuda.max_memory_allocated() / GB,
           "compute_dtype": str(model.dtype_for_compute)}
    model = None  # free the GPU memory before the next section
    torch.cuda.empty_cache()
    return out


@section("ovi_bf16_block_swap")
def block_swap(layers, resident):
    torch.cuda.empty_cache()
    model = random_model(ovi_config(num_layers=layers), device="cpu")
    BlockSwap(model, "cuda", resident=resident)
    torch.cuda.empty_cache()
    weights_on_gpu = torch.cuda.memory_allocated() / GB
    x = ovi_inputs()
    torch.cuda.reset_peak_memory_stats()
    sec = timed(lambda: forward(model, x), repeats=2)
    out = {"resident_blocks": resident, "weights_on_gpu_GB": weights_on_gpu, "forward_s": sec,
           "peak_GB": torch.cuda.max_memory_allocated() / GB, "transfers": model.block_swap.transfers}
    model.block_swap = None
    model = None  # free the GPU memory before the next section
    torch.cuda.empty_cache()
    return out


@section("tarp_vs_full_attention")
def tarp(layers):
    out = {}
    for label, changes in (("ovi_full", {}), ("ccl_tarp_w2_ctx8", dict(fusion="ccl", n_ctx=8, tarp_window=2,
                                                                        audio_rope_scale=None))):
        torch.cuda.empty_cache()
        model = random_model(ovi_config(num_layers=layers, **changes))
        for seconds in (5, 10):
            x = ovi_inputs(seconds=seconds, height=44, width=80)
            torch.cuda.reset_peak_memory_stats()
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
                out[f"{label}_{seconds}s_s"] = timed(lambda: forward(model, x), repeats=2)
                out[f"{label}_{seconds}s_peak_GB"] = torch.cuda.max_memory_allocated() / GB
                null = torch.zeros_like(x["text"][:, :8])
                torch.cuda.reset_peak_memory_stats()
                out[f"{label}_{seconds}s_ucg_decoupled_s"] = timed(
                    lambda: guided_velocity(model, x["video"], x["audio"], 0.7, None, x["text"], null,
                                            Guidance("decoupled")), repeats=2)
                out[f"{label}_{seconds}s_ucg_decoupled_peak_GB"] = torch.cuda.max_memory_allocated() / GB
        model = None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--tarp-layers", type=int, default=8)
    ap.add_argument("--sections", default="parity,bf16,fp8,swap,tarp",
                    help="comma-separated subset of parity, bf16, fp8, swap, tarp")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU")
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | {torch.cuda.get_device_properties(0).total_memory / GB:.0f} GB",
          flush=True)
    todo = set(args.sections.split(","))
    if "parity" in todo:
        parity_on_cuda()
    if "bf16" in todo:
        bf16_full(args.layers)
    if "fp8" in todo:
        fp8_full(args.layers)
    if "swap" in todo:
        block_swap(args.layers, resident=0)
    if "tarp" in todo:
        tarp(args.tarp_layers)
    RESULTS["device"] = torch.cuda.get_device_name()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(RESULTS, f, indent=1)


if __name__ == "__main__":
    main()
