"""Stub of comfy/supported_models_base.py BASE: the config object a BaseModel is built from.

scaled_fp8 (0.3.x) and quant_config (0.12+) are how each generation marks a scaled-fp8 model;
tests delete one to present the other version's features."""
import torch

import comfy.latent_formats


class BASE:
    unet_config = {}
    unet_extra_config = {"num_heads": -1, "num_head_channels": 64}
    sampling_settings = {}
    latent_format = comfy.latent_formats.LatentFormat
    supported_inference_dtypes = [torch.float16, torch.bfloat16, torch.float32]
    memory_usage_factor = 2.0
    manual_cast_dtype = None
    custom_operations = None
    scaled_fp8 = None
    quant_config = None
    optimizations = {"fp8": False}

    def __init__(self, unet_config):
        self.unet_config = unet_config.copy()  # the argument, not the class attribute
        self.sampling_settings = self.sampling_settings.copy()
        self.latent_format = self.latent_format()
        self.optimizations = self.optimizations.copy()
        for k in self.unet_extra_config:
            self.unet_config[k] = self.unet_extra_config[k]

    def set_inference_dtype(self, dtype, manual_cast_dtype):
        self.unet_config["dtype"] = dtype
        self.manual_cast_dtype = manual_cast_dtype
