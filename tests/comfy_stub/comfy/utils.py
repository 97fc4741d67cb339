"""Stub of comfy/utils.py: pack_latents, unpack_latents, repeat_to_batch_size, ProgressBar, common_upscale."""
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
