"""Stub of comfy/samplers.py: CFGGuider and calc_cond_batch, with Euler as the only sampler.

Mimics sampler_helpers.convert_cond, encode_model_conds/process_conds (every cond dict key reaches
model.extra_conds; latent_shapes, noise, latent_image, denoise_mask are added), CFGGuider.sample
(packs a nested latent and noise, unpacks the result), KSamplerX0Inpaint (with a denoise mask the
kept part of x is the re-noised latent and the kept part of x0 the latent itself), k-diffusion's
Euler step, calc_cond_batch (conds whose model_conds have the same keys and can_concat run as one
batch; output order per cond list) and sampling_function's cfg.
"""
import uuid

import torch

import comfy.nested_tensor
import comfy.utils

CALLS = []  # test helper: batch size of every model call made by calc_cond_batch


def convert_cond(cond):
    out = []
    for t, d in cond:
        temp = d.copy()
        if t is not None:
            temp["cross_attn"] = t
        temp["model_conds"] = temp.get("model_conds", {})
        temp["uuid"] = uuid.uuid4()
        out.append(temp)
    return out


def _process_conds(model, conds, noise, latent_image, denoise_mask, latent_shapes):
    for key, cs in conds.items():
        for i, c in enumerate(cs):
            params = c.copy()
            params.update(device=noise.device, noise=noise, prompt_type=params.get("prompt_type", key))
            for k, v in (("latent_image", latent_image), ("denoise_mask", denoise_mask), ("latent_shapes", latent_shapes)):
                params.setdefault(k, v)
            out = model.extra_conds(**params)
            c = c.copy()
            c["model_conds"] = {**c["model_conds"], **out}
            cs[i] = c
    return conds


def _can_concat(a, b):
    if a.keys() != b.keys():
        return False
    return all(a[k].can_concat(b[k]) for k in a)


def calc_cond_batch(model, conds, x_in, timestep, model_options):
    items = []
    for i, cond in enumerate(conds):
        for c in cond or []:
            items.append((i, {k: v.process_cond(batch_size=x_in.shape[0]) for k, v in c["model_conds"].items()}))
    out = [torch.zeros_like(x_in) for _ in conds]
    while items:
        first = items[0][1]
        group = [it for it in items if _can_concat(it[1], first)]
        items = [it for it in items if not any(it is g for g in group)]
        c = {k: first[k].concat([g[1][k] for g in group[1:]]) if len(group) > 1 else
             (first[k].cond) for k in first}
        x = torch.cat([x_in] * len(group))
        t = torch.cat([timestep] * len(group))
        CALLS.append(x.shape[0])
        res = model.apply_model(x, t, transformer_options={"cond_or_uncond": [g[0] for g in group]}, **c)
        for (i, _), o in zip(group, res.chunk(len(group))):
            out[i] = out[i] + o
    return out


class CFGGuider:
    def __init__(self, model_patcher):
        self.model_patcher = model_patcher
        self.model_options = model_patcher.model_options
        self.original_conds = {}
        self.cfg = 1.0

    def set_conds(self, positive, negative):
        self.inner_set_conds({"positive": positive, "negative": negative})

    def set_cfg(self, cfg):
        self.cfg = cfg

    def inner_set_conds(self, conds):
        for k in conds:
            self.original_conds[k] = convert_cond(conds[k])

    def __call__(self, *args, **kwargs):
        return self.predict_noise(*args, **kwargs)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        pos, neg = self.conds.get("positive"), self.conds.get("negative")
        c, u = calc_cond_batch(self.inner_model, [pos, neg], x, timestep, model_options)
        return u + (c - u) * self.cfg

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None):
        if getattr(latent_image, "is_nested", False):
            latent_image, shapes = comfy.utils.pack_latents(latent_image.unbind())
            noise, _ = comfy.utils.pack_latents(noise.unbind())
        else:
            shapes = [latent_image.shape]
        self.inner_model = self.model_patcher.model
        self.conds = {k: [c.copy() for c in v] for k, v in self.original_conds.items()}
        if torch.count_nonzero(latent_image) > 0:
            latent_image = self.inner_model.process_latent_in(latent_image)
        self.conds = _process_conds(self.inner_model, self.conds, noise, latent_image, denoise_mask, shapes)
        ms = self.inner_model.model_sampling
        x = ms.noise_scaling(sigmas[0], noise, latent_image)
        for i in range(len(sigmas) - 1):
            s, s_next = sigmas[i], sigmas[i + 1]
            xi = x
            if denoise_mask is not None:
                xi = x * denoise_mask + ms.noise_scaling(s, noise, latent_image) * (1 - denoise_mask)
            den = self(xi, s.view(1).expand(x.shape[0]), self.model_options, seed)
            if denoise_mask is not None:
                den = den * denoise_mask + latent_image * (1 - denoise_mask)
            x = x + (x - den) / s * (s_next - s)  # Euler on the sampler's own x
        out = self.inner_model.process_latent_out(x.float())
        if len(shapes) > 1:
            out = comfy.nested_tensor.NestedTensor(comfy.utils.unpack_latents(out, shapes))
        del self.inner_model
        return out
