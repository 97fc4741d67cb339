"""Stub of comfy/ops.py: the operations namespaces a BaseModel builds its diffusion model from.

Mimics disable_weight_init (layers that skip their init; with `comfy_cast_weights` set, weight and
bias are cast to the input's dtype and device at each call, as ComfyUI's lowvram mode does),
manual_cast (casting always on) and pick_operations' choice between the two. Its RMSNorm has
ComfyUI's signature (normalized_shape, eps, elementwise_affine) and computes in the input dtype.
"""
import torch
import torch.nn.functional as F


class CastWeightBiasOp:
    comfy_cast_weights = False


def _weights(s, x):
    w = None if s.weight is None else s.weight.to(device=x.device, dtype=x.dtype)
    b = None if getattr(s, "bias", None) is None else s.bias.to(device=x.device, dtype=x.dtype)
    return w, b


class disable_weight_init:
    class Linear(torch.nn.Linear, CastWeightBiasOp):
        def reset_parameters(self):
            return None

        def forward(self, x):
            return F.linear(x, *_weights(self, x)) if self.comfy_cast_weights else super().forward(x)

    class Conv1d(torch.nn.Conv1d, CastWeightBiasOp):
        def reset_parameters(self):
            return None

        def forward(self, x):
            return self._conv_forward(x, *_weights(self, x)) if self.comfy_cast_weights else super().forward(x)

    class Conv3d(torch.nn.Conv3d, CastWeightBiasOp):
        def reset_parameters(self):
            return None

        def forward(self, x):
            return self._conv_forward(x, *_weights(self, x)) if self.comfy_cast_weights else super().forward(x)

    class LayerNorm(torch.nn.LayerNorm, CastWeightBiasOp):
        def reset_parameters(self):
            return None

        def forward(self, x):
            w, b = _weights(self, x) if self.comfy_cast_weights else (self.weight, self.bias)
            return F.layer_norm(x, self.normalized_shape, w, b, self.eps)

    class RMSNorm(torch.nn.Module, CastWeightBiasOp):
        def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
            super().__init__()
            self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
            self.eps = eps
            self.weight = torch.nn.Parameter(torch.empty(self.normalized_shape, device=device, dtype=dtype)) \
                if elementwise_affine else None

        def forward(self, x):
            w = self.weight.to(device=x.device, dtype=x.dtype) if self.comfy_cast_weights else self.weight
            return F.rms_norm(x, self.normalized_shape, w, self.eps)


class manual_cast(disable_weight_init):
    class Linear(disable_weight_init.Linear):
        comfy_cast_weights = True

    class Conv1d(disable_weight_init.Conv1d):
        comfy_cast_weights = True

    class Conv3d(disable_weight_init.Conv3d):
        comfy_cast_weights = True

    class LayerNorm(disable_weight_init.LayerNorm):
        comfy_cast_weights = True

    class RMSNorm(disable_weight_init.RMSNorm):
        comfy_cast_weights = True


def pick_operations(weight_dtype, compute_dtype, load_device=None, fp8_optimizations=False, scaled_fp8=None,
                    model_config=None):
    if compute_dtype is None or weight_dtype == compute_dtype:
        return disable_weight_init
    return manual_cast
