"""Stub of comfy/model_base.py: ModelType, FLOW model sampling and BaseModel's call path.

Mimics BaseModel.__init__ (the diffusion model built as `unet_model(**unet_config, device=device,
operations=operations)` with operations from comfy.ops.pick_operations(unet_config["dtype"],
manual_cast_dtype, fp8 optimizations, scaled_fp8, model_config) unless the config has custom_operations),
extra_conds (c_crossattn from cross_attn), apply_model/_apply_model (unpack by latent_shapes,
t = sigma * multiplier, re-pack a returned list, x0 = x - sigma * v for FLOW/CONST) and
memory_required; process_latent_in/out through the latent format.
"""
import enum

import torch

import comfy.conds
import comfy.model_management
import comfy.ops
import comfy.utils


class ModelType(enum.Enum):
    EPS = 1
    V_PREDICTION = 2
    FLOW = 6


class ModelSamplingFlow:
    """ModelSamplingDiscreteFlow + CONST: sigma in [0, 1], timestep = sigma * multiplier."""

    def __init__(self, settings):
        self.shift = settings.get("shift", 1.0)
        self.multiplier = settings.get("multiplier", 1000)
        self.sigma_max = torch.tensor(1.0)

    def timestep(self, sigma):
        return sigma * self.multiplier

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_input - model_output * sigma.view(sigma.shape[:1] + (1,) * (model_output.ndim - 1))

    def noise_scaling(self, sigma, noise, latent_image):
        return sigma * noise + (1.0 - sigma) * latent_image


class BaseModel(torch.nn.Module):
    def __init__(self, model_config, model_type=ModelType.EPS, device=None, unet_model=None):
        super().__init__()
        self.model_config = model_config
        self.latent_format = model_config.latent_format
        self.manual_cast_dtype = model_config.manual_cast_dtype
        self.device = device
        unet_config = model_config.unet_config
        if not unet_config.get("disable_unet_model_creation", False):
            if unet_model is None:
                raise NotImplementedError("the stub builds no UNet: pass unet_model")
            operations = model_config.custom_operations or comfy.ops.pick_operations(
                unet_config.get("dtype"), self.manual_cast_dtype, fp8_optimizations=model_config.optimizations["fp8"],
                scaled_fp8=getattr(model_config, "scaled_fp8", None), model_config=model_config)
            self.diffusion_model = unet_model(**unet_config, device=device, operations=operations)
            self.diffusion_model.eval()
        self.model_type = model_type
        self.model_sampling = ModelSamplingFlow(model_config.sampling_settings)
        self.memory_usage_factor = model_config.memory_usage_factor

    def get_dtype(self):
        return self.diffusion_model.dtype

    def apply_model(self, x, t, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        sigma = t
        dtype = self.manual_cast_dtype or self.get_dtype()
        xc = x.to(dtype)
        timestep = self.model_sampling.timestep(t).float()
        context = None if c_crossattn is None else c_crossattn.to(dtype)
        extra = {k: (v.to(dtype) if torch.is_tensor(v) and v.dtype not in (torch.int, torch.long) else v)
                 for k, v in kwargs.items()}
        if "latent_shapes" in extra:
            xc = comfy.utils.unpack_latents(xc, extra.pop("latent_shapes"))
        out = self.diffusion_model(xc, timestep, context=context, control=control,
                                   transformer_options=transformer_options, **extra)
        if not torch.is_tensor(out) and len(out) > 1:
            out, _ = comfy.utils.pack_latents(out)
        return self.model_sampling.calculate_denoised(sigma, out.float(), x)

    def extra_conds(self, **kwargs):
        out = {}
        if kwargs.get("cross_attn") is not None:
            out["c_crossattn"] = comfy.conds.CONDCrossAttn(kwargs["cross_attn"])
        return out

    def process_latent_in(self, latent):
        return self.latent_format.process_in(latent)

    def process_latent_out(self, latent):
        return self.latent_format.process_out(latent)

    def memory_required(self, input_shape, cond_shapes={}):
        area = input_shape[0] * torch.tensor(input_shape[2:]).prod().item()
        return area * 0.15 * self.memory_usage_factor * 2**20
