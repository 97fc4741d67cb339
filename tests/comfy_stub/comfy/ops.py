"""Stub of comfy/ops.py: the operations namespaces a BaseModel builds its diffusion model from.

Mimics disable_weight_init (layers that skip their init; with `comfy_cast_weights` set, weight and
bias are cast to the input's dtype and device at each call, as ComfyUI's lowvram mode does),
manual_cast (casting always on) and pick_operations' choice between them. Its RMSNorm has
ComfyUI's signature (normalized_shape, eps, elementwise_affine) and computes in the input dtype.
Scaled fp8, two generations: 0.3.x's scaled_fp8_ops (Linear weights built in the override dtype
with a float32 `scale_weight`, and `scale_input` with fp8 optimizations; weight * scale at each
call) and 0.12+'s mixed_precision_ops (Linear layers with no weight until load_state_dict, which
takes `weight`, `comfy_quant`, `weight_scale`, `input_scale`; the real layer wraps the fp8 weight
in a QuantizedTensor, the stub keeps the scale beside it). Tests delete one or the other to
present each version's features.
"""
import json

import torch
import torch.nn.functional as F


class CastWeightBiasOp:
    comfy_cast_weights = False


def _weights(s, x):
    w = None if s.weight is None else s.weight.to(device=x.device, dtype=x.dtype)
    b = None if getattr(s, "bias", None) is None else s.bias.to(device=x.device, dtype=x.dtype)
    return w, b


class _SkipInit(CastWeightBiasOp):
    """Put before the torch layer in the bases: the layer's own init is skipped (weights come from a file)."""

    def reset_parameters(self):
        return None


class _Conv(_SkipInit):
    def forward(self, x):
        return self._conv_forward(x, *_weights(self, x)) if self.comfy_cast_weights else super().forward(x)


class disable_weight_init:
    class Linear(_SkipInit, torch.nn.Linear):
        def forward(self, x):
            return F.linear(x, *_weights(self, x)) if self.comfy_cast_weights else super().forward(x)

    class Conv1d(_Conv, torch.nn.Conv1d):
        pass

    class Conv3d(_Conv, torch.nn.Conv3d):
        pass

    class LayerNorm(_SkipInit, torch.nn.LayerNorm):
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


def scaled_fp8_ops(fp8_matrix_mult=False, scale_input=False, override_dtype=None):
    class scaled_fp8_op(manual_cast):
        class Linear(manual_cast.Linear):
            def __init__(self, *args, **kwargs):
                if override_dtype is not None:
                    kwargs["dtype"] = override_dtype
                super().__init__(*args, **kwargs)

            def reset_parameters(self):
                if not hasattr(self, "scale_weight"):
                    self.scale_weight = torch.nn.Parameter(torch.ones((), device=self.weight.device,
                                                                      dtype=torch.float32), requires_grad=False)
                if not scale_input:
                    self.scale_input = None
                if not hasattr(self, "scale_input"):
                    self.scale_input = torch.nn.Parameter(torch.ones((), device=self.weight.device,
                                                                     dtype=torch.float32), requires_grad=False)

            def forward(self, x):
                w, b = _weights(self, x)
                return F.linear(x, w * self.scale_weight.to(device=x.device, dtype=x.dtype), b)

    return scaled_fp8_op


def mixed_precision_ops(quant_config={}, compute_dtype=torch.bfloat16, full_precision_mm=False, disabled=[]):
    class MixedPrecisionOps(manual_cast):
        _quant_config = quant_config
        _compute_dtype = compute_dtype

        class Linear(torch.nn.Module, CastWeightBiasOp):
            comfy_cast_weights = True

            def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
                super().__init__()
                self.factory_kwargs = {"device": device, "dtype": MixedPrecisionOps._compute_dtype}
                self.in_features, self.out_features = in_features, out_features
                if bias:
                    self.bias = torch.nn.Parameter(torch.empty(out_features, **self.factory_kwargs))
                else:
                    self.register_parameter("bias", None)
                self.weight_scale = self.quant_format = None

            def reset_parameters(self):
                return None

            def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs):
                weight = state_dict.pop(prefix + "weight")
                conf = state_dict.pop(prefix + "comfy_quant", None)
                if conf is None:
                    self.weight = torch.nn.Parameter(weight.to(MixedPrecisionOps._compute_dtype), requires_grad=False)
                else:
                    self.quant_format = json.loads(conf.numpy().tobytes())["format"]
                    if self.quant_format != "float8_e4m3fn":
                        raise ValueError(f"stub: unsupported format {self.quant_format}")
                    self.weight = torch.nn.Parameter(weight, requires_grad=False)
                    self.weight_scale = state_dict.pop(prefix + "weight_scale")
                    self.input_scale = state_dict.pop(prefix + "input_scale", None)
                super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                              unexpected_keys, error_msgs)
                if prefix + "weight" in missing_keys:  # taken above
                    missing_keys.remove(prefix + "weight")

            def forward(self, x):
                w, b = _weights(self, x)
                if self.weight_scale is not None:
                    w = w * self.weight_scale.to(device=x.device, dtype=x.dtype)
                return F.linear(x, w, b)

    return MixedPrecisionOps


def pick_operations(weight_dtype, compute_dtype, load_device=None, fp8_optimizations=False, scaled_fp8=None,
                    model_config=None):
    if getattr(model_config, "quant_config", None):
        return mixed_precision_ops(model_config.quant_config, compute_dtype)
    if scaled_fp8 is not None:
        return scaled_fp8_ops(fp8_matrix_mult=False, scale_input=fp8_optimizations, override_dtype=scaled_fp8)
    if compute_dtype is None or weight_dtype == compute_dtype:
        return disable_weight_init
    return manual_cast
