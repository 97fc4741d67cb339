"""One sampling step of the embedded model inside ComfyUI against the same step through ccl_core.

    COMFYUI_PATH=/path/to/ComfyUI $COMFYUI_PYTHON benchmarks/bench_comfy_step.py [--steps 8] [--rounds 3]
        [--out docs/benchmarks/comfy_step.json] [ComfyUI flags, e.g. --use-pytorch-cross-attention]

Same latents (a 2 s clip of the embedded ToyAV model), same text, same UCG joint guidance (its three
branches in one batch), Euler on the same sigmas. ComfyUI's side is its own sampling path:
SamplerCustomAdvanced with the CCL guider, the model built natively (comfy.ops layers, ComfyUI's
attention dispatcher). ccl_core's side is ccl_core.sampling.sample with guided_velocity. The two run
alternately in one process, `rounds` times each; the ratio of the medians of seconds per step is
reported (the issue's bar: at most 1.05). The final latents of both are compared as a check that
the same work was done.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from comfy_boot import boot, sample_custom_advanced  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=8)
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--out")
args, comfy_flags = parser.parse_known_args()
folder_paths, comfy_nodes, sampler_nodes, pack = boot(comfy_flags)

import torch  # noqa: E402

torch.set_num_threads(args.threads)
import comfy.ldm.modules.attention as comfy_attention  # noqa: E402
import comfy.samplers  # noqa: E402
from ccl_pack.ccl_core.assets import ASSETS, MODEL_FILE  # noqa: E402
from ccl_pack.ccl_core.checkpoint import load_checkpoint, read_header  # noqa: E402
from ccl_pack.ccl_core.guidance import guided_velocity  # noqa: E402
from ccl_pack.ccl_core.sampling import flow_sigmas, sample  # noqa: E402
from ccl_pack.ccl_core import latent_spec  # noqa: E402
from ccl_pack.ccl_core.toyav.embedded import GUIDANCE, SHIFT  # noqa: E402
from ccl_pack.nodes import joint  # noqa: E402
from ccl_pack.nodes.comfy_model import model_from_file  # noqa: E402
from ccl_pack.nodes.guidance import CCLGuider  # noqa: E402

path = str(ASSETS / MODEL_FILE)
header = read_header(path)
net = load_checkpoint(path).eval()
cfg = net.config
spec = latent_spec.model_spec(cfg, header.metadata)
patcher = model_from_file(header, cfg, spec, SHIFT, torch.float32)
t, h, w, length = spec.sizes(2.0, 64, 64)[:4]
g = torch.Generator().manual_seed(0)
noise_v = torch.randn(1, cfg.video_channels, t, h, w, generator=g)
noise_a = torch.randn(1, cfg.audio_channels, length, generator=g)
text = torch.randn(1, cfg.text_len, cfg.text_dim, generator=g)
null = torch.zeros_like(text)
guidance = GUIDANCE
sigmas = flow_sigmas(args.steps, shift=SHIFT)


def comfy_run():
    guider = CCLGuider(patcher)
    guider.set_guidance(guidance, [[text, {}]], [[null, {}]], spec)
    latent = {"samples": joint.nested((torch.zeros_like(noise_v), torch.zeros_like(noise_a)))}
    start = time.perf_counter()
    out = sample_custom_advanced(sampler_nodes, joint.nested((noise_v, noise_a)), guider,
                                 comfy.samplers.sampler_object("euler"), sigmas, latent)
    return time.perf_counter() - start, out["samples"].unbind()


def core_run():
    def velocity(x, s):
        v, a = guided_velocity(net, x["video"], x["audio"], s, s, text, null, guidance)
        return {"video": v, "audio": a}

    start = time.perf_counter()
    with torch.no_grad():
        out = sample(velocity, {"video": noise_v * sigmas[0], "audio": noise_a * sigmas[0]}, sigmas, "euler")
    return time.perf_counter() - start, (out["video"], out["audio"])


comfy_run()  # warm-up: model load, first-call allocations
core_run()
times = {"comfy": [], "ccl_core": []}
for _ in range(args.rounds):
    s, comfy_out = comfy_run()
    times["comfy"].append(s / args.steps)
    s, core_out = core_run()
    times["ccl_core"].append(s / args.steps)
diff = max(float((a - b).abs().max()) for a, b in zip(comfy_out, core_out))
med = {k: statistics.median(v) for k, v in times.items()}
result = {
    "clip": {"seconds": 2.0, "video_latent": list(noise_v.shape), "audio_latent": list(noise_a.shape)},
    "guidance": "UCG joint (3 branches, one batch)", "steps": args.steps, "rounds": args.rounds,
    "threads": args.threads, "comfy_flags": comfy_flags,
    "attention": getattr(comfy_attention.optimized_attention, "__name__", "?"),
    "seconds_per_step": {k: [round(x, 4) for x in v] for k, v in times.items()},
    "median_seconds_per_step": {k: round(v, 4) for k, v in med.items()},
    "ratio_comfy_over_core": round(med["comfy"] / med["ccl_core"], 3),
    "final_latents_max_abs_diff": diff,
}
print(json.dumps(result, indent=1))
if args.out:
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
