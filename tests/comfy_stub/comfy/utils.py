"""Stub of comfy/utils.py: pack_latents, unpack_latents, repeat_to_batch_size, ProgressBar, common_upscale,
and 0.12+'s convert_old_quants / detect_layer_quantization (scaled fp8 -> per-layer quant configs)."""
import json
import math

import torch

PROGRESS = []  # test helper: (total, value) of every ProgressBar update


def pack_latents(latents):
    shapes = [t.shape for t in latents]
    return torch.cat([t.reshape(t.shape[0], 1, -1) for t in latents], dim=-1), shapes


def unpack_latents(combined, latent_shapes):
    if len(latent_shapes) <= 1:
        return combined
    out = []
    for shape in latent_shapes:
        n = math.prod(shape[1:])
        out.append(combined[:, :, :n].reshape([combined.shape[0]] + list(shape)[1:]))
        combined = combined[:, :, n:]
    return out


def repeat_to_batch_size(tensor, batch_size):
    if tensor.shape[0] > batch_size:
        return tensor[:batch_size]
    if tensor.shape[0] < batch_size:
        return tensor.repeat([math.ceil(batch_size / tensor.shape[0])] + [1] * (tensor.ndim - 1))[:batch_size]
    return tensor


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total, self.current = total, 0

    def update_absolute(self, value, total=None, preview=None):
        import comfy.model_management
        comfy.model_management.throw_exception_if_processing_interrupted()  # the server's hook does this
        self.current = value
        PROGRESS.append((self.total, value))

    def update(self, value):
        self.update_absolute(self.current + value)


def common_upscale(samples, width, height, upscale_method, crop):
    """[B, C, H, W] resized to (height, width); the stub only does a plain bilinear resize (no crop)."""
    return torch.nn.functional.interpolate(samples, size=(height, width), mode="bilinear", align_corners=False)


def detect_layer_quantization(state_dict, prefix):
    return {"mixed_ops": True} if any(k.startswith(prefix) and k.endswith(".comfy_quant") for k in state_dict) else None


def convert_old_quants(state_dict, model_prefix="", metadata={}):
    """The `scaled_fp8` marker's file: `<layer>.scale_weight` -> `weight_scale` plus a `comfy_quant`
    JSON tensor per layer, `scale_input` -> `input_scale` (dropped when 1.0), the marker removed."""
    marker = model_prefix + "scaled_fp8"
    if marker not in state_dict:
        return state_dict, metadata
    conf = {"format": "float8_e4m3fn"}
    if state_dict[marker].nelement() == 2:
        conf["full_precision_matrix_mult"] = True
    out = {}
    for k, v in state_dict.items():
        if k == marker:
            continue
        if k.endswith(".scale_weight"):
            layer = k[:-len(".scale_weight")]
            out[layer + ".weight_scale"] = v
            out[layer + ".comfy_quant"] = torch.tensor(list(json.dumps(conf).encode("utf-8")), dtype=torch.uint8)
        elif k.endswith(".scale_input"):
            if v.item() != 1.0:
                out[k[:-len(".scale_input")] + ".input_scale"] = v
        else:
            out[k] = v
    return out, metadata
