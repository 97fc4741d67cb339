"""Run with ComfyUI's Python: the embedded model as a native ComfyUI model, checked in-process (CPU).

    COMFYUI_PATH=... $COMFYUI_PYTHON tests/comfy_native_check.py OUT.json [ComfyUI flags...]

COMFYUI_PATH is an upstream checkout (0.3.x: main.py beside comfy/) or the pip-installed "ComfyUI
LTS" 0.12 source tree (its comfy package is imported from the venv). Checks, each written to OUT.json:
- parity: one native sampling step (Guider_Basic + SamplerCustomAdvanced, Euler from sigma to 0,
  which returns x0 = x - sigma * v) on the embedded ToyAV model equals ccl_core's velocity;
- lora: LoraLoaderModelOnly with three key formats (diffusion_model.* kohya, lora_unet_*,
  diffusers/PEFT lora_A/lora_B) gives the output of the same weights merged by hand, float32;
- lowvram: the same LoRA with the model partially loaded (every layer cast per call, the patches
  applied on the fly) gives the same output again;
- attention: which dispatcher ComfyUI's launch flags chose, and that the model went through it;
- scaled_fp8: the embedded model written as a scaled-fp8 file and loaded by the CCL Model Loader through
  this ComfyUI's own fp8 ops (route, ops class, weight dtype) gives the step of the same file dequantized
  by hand; LoRA on it, then lowvram and block swap, against the LoRA merged by hand (fp8 re-rounds the
  patched layers) and against the LoRA model fully loaded.
"""

import json
import os
import sys

import torch

from comfy_boot import boot, sample_custom_advanced

out_path, flags = sys.argv[1], sys.argv[2:]
folder_paths, comfy_nodes, sampler_nodes, pack = boot(flags)
Guider_Basic = sampler_nodes.Guider_Basic
torch.set_num_threads(2)
import comfy.ldm.modules.attention as comfy_attention  # noqa: E402
import comfy.model_management as mm  # noqa: E402
import comfy.samplers  # noqa: E402

core = pack.ccl_core
from ccl_pack.ccl_core.assets import ASSETS, MODEL_FILE  # noqa: E402
from ccl_pack.ccl_core.checkpoint import load_checkpoint, read_header  # noqa: E402
from ccl_pack.ccl_core import latent_spec  # noqa: E402
from ccl_pack.nodes import joint  # noqa: E402
from ccl_pack.nodes.comfy_model import model_from_file  # noqa: E402

res = {"flags": flags}
path = str(ASSETS / MODEL_FILE)
header = read_header(path)
net = load_checkpoint(path).eval()  # the plain ccl_core model: the reference
cfg = net.config
spec_ = latent_spec.model_spec(cfg, header.metadata)
patcher = model_from_file(header, cfg, spec_, 3.0, torch.float32)

g = torch.Generator().manual_seed(0)
t, h, w, length = spec_.sizes(1.0, 64, 64)[:4]
video = torch.zeros(1, cfg.video_channels, t, h, w)
audio = torch.zeros(1, cfg.audio_channels, length)
noise_v, noise_a = torch.randn(video.shape, generator=g), torch.randn(audio.shape, generator=g)
text = torch.randn(1, cfg.text_len, cfg.text_dim, generator=g)
sigma = 0.7


def native_x0(model):
    """x0 after one Euler step from sigma to 0 through ComfyUI's own guider and sampler."""
    guider = Guider_Basic(model)
    guider.set_conds([[text, {}]])
    latent = {"samples": joint.nested((video, audio))}
    out = sample_custom_advanced(sampler_nodes, joint.nested((noise_v, noise_a)), guider,
                                 comfy.samplers.sampler_object("euler"), torch.tensor([sigma, 0.0]), latent)
    return out["samples"].unbind()


def core_x0(model_net):
    with torch.no_grad():
        ev, ea = model_net(sigma * noise_v, sigma * noise_a, sigma, sigma, text)
    return sigma * noise_v - sigma * ev, sigma * noise_a - sigma * ea


def max_diff(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


calls = [0]
dispatch = comfy_attention.optimized_attention


def counted(*args, **kwargs):
    calls[0] += 1
    return dispatch(*args, **kwargs)


comfy_attention.optimized_attention = counted
got = native_x0(patcher)
comfy_attention.optimized_attention = dispatch
want = core_x0(net)
res["attention"] = {"dispatcher": getattr(dispatch, "__name__", str(dispatch)), "calls": calls[0], "blocks": cfg.num_layers}
res["parity_max_abs_diff"] = max_diff(got, want)

# ---------------------------------------------------------------- LoRA: three key formats
targets = ["video_model.blocks.0.self_attn.q", "audio_model.blocks.1.cross_attn.k_fusion",
           "video_model.blocks.2.ffn.0", "audio_model.blocks.0.cross_attn.o"]
rank, alpha, strength = 2, 1.0, 0.8
state = net.state_dict()
merged = {k: v.clone() for k, v in state.items()}
formats = {"kohya": {}, "lora_unet": {}, "peft": {}}
for key in targets:
    w = state[key + ".weight"]
    down = torch.randn(rank, w.shape[1], generator=g) * 0.1
    up = torch.randn(w.shape[0], rank, generator=g) * 0.1
    merged[key + ".weight"] = w + strength * (alpha / rank) * (up @ down)
    formats["kohya"].update({f"diffusion_model.{key}.lora_down.weight": down, f"diffusion_model.{key}.lora_up.weight": up,
                             f"diffusion_model.{key}.alpha": torch.tensor(alpha)})
    flat = "lora_unet_" + key.replace(".", "_")
    formats["lora_unet"].update({f"{flat}.lora_down.weight": down, f"{flat}.lora_up.weight": up,
                                 f"{flat}.alpha": torch.tensor(alpha)})
    formats["peft"].update({f"diffusion_model.{key}.lora_A.weight": down * (alpha / rank),
                            f"diffusion_model.{key}.lora_B.weight": up})
ref_net = core.DualStreamModel(cfg)
ref_net.load_state_dict(merged)
want_lora = core_x0(ref_net.eval())
res["lora"] = {}
from safetensors.torch import save_file  # noqa: E402

lora_dir = folder_paths.get_folder_paths("loras")[0]
loader = comfy_nodes.LoraLoaderModelOnly()
for name, tensors in formats.items():
    save_file(tensors, os.path.join(lora_dir, f"ccl_{name}.safetensors"))
    lora_model = loader.load_lora_model_only(patcher, f"ccl_{name}.safetensors", strength)[0]
    res["lora"][name] = {"patched_keys": len(lora_model.patches), "max_abs_diff": max_diff(native_x0(lora_model), want_lora)}
res["lora"]["base_after"] = max_diff(native_x0(patcher), want)  # the unpatched model is restored

# ---------------------------------------------------------------- lowvram: partial load, patches on the fly
lora_model = loader.load_lora_model_only(patcher, "ccl_kohya.safetensors", strength)[0]
mm.unload_all_models()
lora_model.load(mm.get_torch_device(), lowvram_model_memory=1, force_patch_weights=False, full_load=False)
layers = [m for m in lora_model.model.diffusion_model.modules() if hasattr(m, "comfy_cast_weights")]
cast = sum(bool(m.comfy_cast_weights) for m in layers)
with torch.no_grad():
    ev, ea = lora_model.model.diffusion_model([sigma * noise_v, sigma * noise_a], torch.tensor([sigma * 1000.0]),
                                              context=text)
x0 = (sigma * noise_v - sigma * ev, sigma * noise_a - sigma * ea)
res["lowvram"] = {"layers": len(layers), "cast_per_call": cast, "max_abs_diff": max_diff(x0, want_lora)}
lora_model.unpatch_model()

# ---------------------------------------------------------------- block swap after a full load (LoRA merged in place)
from ccl_pack.nodes.comfy_model import offload_blocks  # noqa: E402

mm.unload_all_models()
lora_model = loader.load_lora_model_only(patcher, "ccl_kohya.safetensors", strength)[0]
lora_model.load(mm.get_torch_device(), full_load=True)
switched = offload_blocks(lora_model.model.diffusion_model, 1, lora_model.offload_device)
with torch.no_grad():
    ev, ea = lora_model.model.diffusion_model([sigma * noise_v, sigma * noise_a], torch.tensor([sigma * 1000.0]),
                                              context=text)
res["block_swap"] = {"switched": switched, "max_abs_diff": max_diff((sigma * noise_v - sigma * ev,
                                                                     sigma * noise_a - sigma * ea), want_lora)}
lora_model.unpatch_model()

# ---------------------------------------------------------------- scaled fp8 through the CCL Model Loader
# The embedded model as a scaled-fp8 file (per-layer scale_weight = amax / 448), loaded the way this ComfyUI
# keeps such files (scaled_fp8_route); the reference is the same file dequantized by hand (ccl_core).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the helper imports ccl_core
from scaled_fp8 import write_scaled  # noqa: E402
from ccl_pack.nodes import model_loading  # noqa: E402
from ccl_pack.nodes.comfy_model import scaled_fp8_route  # noqa: E402

mm.unload_all_models()
scaled_name = "toyav_ccl_fp8_scaled.safetensors"
scaled_path = os.path.join(folder_paths.get_folder_paths("diffusion_models")[0], scaled_name)
os.makedirs(os.path.dirname(scaled_path), exist_ok=True)
write_scaled(path, scaled_path)
fp8_model = model_loading.load_model(scaled_name, "default")
q = fp8_model.model.diffusion_model.video_model.blocks[0].self_attn.q
scaled_net = load_checkpoint(scaled_path, dtype="fp32").eval()
want_s = core_x0(scaled_net)
res["scaled_fp8"] = {"route": scaled_fp8_route(), "ops": type(q).__qualname__,
                     "weight": str(getattr(q.weight, "_qdata", q.weight).dtype),  # 0.12+: inside a QuantizedTensor
                     "quant_error": max_diff(want_s, want),  # the file's fp8 rounding, for scale
                     "parity": max_diff(native_x0(fp8_model), want_s)}
merged_s = scaled_net.state_dict()
for key in targets:
    merged_s[key + ".weight"] = merged_s[key + ".weight"] + merged[key + ".weight"] - state[key + ".weight"]
ref_s = core.DualStreamModel(cfg)
ref_s.load_state_dict(merged_s)
want_lora_s = core_x0(ref_s.eval())
lora_model = loader.load_lora_model_only(fp8_model, "ccl_kohya.safetensors", strength)[0]
lora_x0 = native_x0(lora_model)
res["scaled_fp8"]["lora"] = {"patched_keys": len(lora_model.patches), "effect": max_diff(want_lora_s, want_s),
                             "max_abs_diff": max_diff(lora_x0, want_lora_s), "from_base": max_diff(lora_x0, want_s)}


def direct_x0(model):
    with torch.no_grad():
        ev, ea = model.model.diffusion_model([sigma * noise_v, sigma * noise_a], torch.tensor([sigma * 1000.0]),
                                             context=text)
    return sigma * noise_v - sigma * ev, sigma * noise_a - sigma * ea


mm.unload_all_models()
lora_model.load(mm.get_torch_device(), lowvram_model_memory=1, force_patch_weights=False, full_load=False)
layers = [m for m in lora_model.model.diffusion_model.modules() if hasattr(m, "comfy_cast_weights")]
x0 = direct_x0(lora_model)
res["scaled_fp8"]["lowvram"] = {"layers": len(layers), "cast_per_call": sum(bool(m.comfy_cast_weights) for m in layers),
                                "max_abs_diff": max_diff(x0, want_lora_s), "vs_full_load": max_diff(x0, lora_x0)}
lora_model.unpatch_model()
mm.unload_all_models()
lora_model.load(mm.get_torch_device(), full_load=True)
switched = offload_blocks(lora_model.model.diffusion_model, 1, lora_model.offload_device)
x0 = direct_x0(lora_model)
res["scaled_fp8"]["block_swap"] = {"switched": switched, "max_abs_diff": max_diff(x0, want_lora_s),
                                   "vs_full_load": max_diff(x0, lora_x0)}
lora_model.unpatch_model()
mm.unload_all_models()

# ---------------------------------------------------------------- TorchCompileModel's wrapper (slow on a CPU: opt-in)
if os.environ.get("CCL_CHECK_COMPILE"):
    import time  # noqa: E402

    from comfy_api.torch_helpers import set_torch_compile_wrapper  # noqa: E402

    mm.unload_all_models()
    compiled = patcher.clone()
    set_torch_compile_wrapper(model=compiled, backend="inductor")
    start = time.perf_counter()
    first = native_x0(compiled)
    res["compile"] = {"first_s": time.perf_counter() - start, "max_abs_diff": max_diff(first, want)}
    start = time.perf_counter()
    res["compile"]["again_max_abs_diff"] = max_diff(native_x0(compiled), want)
    res["compile"]["again_s"] = time.perf_counter() - start

with open(out_path, "w") as f:
    json.dump(res, f, indent=1)
print(json.dumps(res))
