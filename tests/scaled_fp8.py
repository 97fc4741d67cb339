"""Scaled-fp8 checkpoints for tests: ComfyUI's per-layer format written from a float checkpoint.

Every block matrix (a 2-D `.weight` under `.blocks.`) becomes float8_e4m3fn with a float32
`<layer>.scale_weight` = amax / 448; every other tensor is stored in bf16 (as ComfyUI's fp8_scaled
files keep embeddings, norms and heads); the `scaled_fp8` marker tensor marks the file.
"""

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ccl_core.checkpoint import SCALE_WEIGHT, SCALED_FP8_KEY, dequantize_fp8, quantize_fp8


def is_scaled_layer(name: str, t: torch.Tensor) -> bool:
    return name.endswith(".weight") and ".blocks." in name and t.ndim == 2


def scaled_state(state, marker_elements: int = 0):
    """A float state dict in scaled fp8 (marker of 0 elements: fp8 matmul allowed; 2: not)."""
    out = {}
    for name, t in state.items():
        if is_scaled_layer(name, t):
            out[name], out[name[:-len("weight")] + SCALE_WEIGHT] = quantize_fp8(t)
        else:
            out[name] = t.detach().to(torch.bfloat16).contiguous()
    out[SCALED_FP8_KEY] = torch.zeros(marker_elements, dtype=torch.float8_e4m3fn)
    return out


def dequantized(scaled):
    """What a scaled state dict holds, by hand, in float32: fp8 * scale for scaled layers."""
    out = {}
    for name, t in scaled.items():
        if name == SCALED_FP8_KEY or name.endswith("." + SCALE_WEIGHT):
            continue
        scale = scaled.get(name[:-len("weight")] + SCALE_WEIGHT)
        out[name] = dequantize_fp8(t, scale) if scale is not None else t.float()
    return out


def write_scaled(src, dst, **kw):
    """Write the scaled-fp8 version of the float safetensors file `src` (metadata kept) to `dst`;
    return its state dict."""
    with safe_open(str(src), "pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata() or {}
    scaled = scaled_state(state, **kw)
    save_file(scaled, str(dst), metadata=metadata)
    return scaled
