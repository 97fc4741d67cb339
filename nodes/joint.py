"""The joint LATENT: making, reading and converting it.

A joint LATENT is `{"samples": NestedTensor((video [B, Cv, T, H, W], audio [B, Ca, L])), "ccl": {...}}`.
The "ccl" entry is plain data that native sampler nodes carry along untouched (they copy the LATENT
dict): the spec of the model that sized the latent (ccl_core.latent_spec.LatentSpec), the task set by
a task node and the clean latent it holds (a2v / v2a's stream, i2av's first frame, an extension's
overlap). Tensors in "samples" are in the model's space (for Ovi: Wan 2.2 normalised video latents,
raw MMAudio latents); to_vae_space converts to the VAE's raw space that native VAE nodes read.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..ccl_core.latent_spec import LatentSpec
from ..ccl_core.routing import prefix_mask
from ..ccl_core.sampling import restore_held as restore_given

CCL_KEY = "ccl"


# ---------------------------------------------------------------------- latent spaces
def _latent_format(space: str):
    """ComfyUI's latent format of a model latent space (None: identity, the latent is the VAE's as is)."""
    if space == "identity":
        return None
    if space == "wan22":
        import comfy.latent_formats
        return comfy.latent_formats.Wan22()
    raise ValueError(f"unknown latent space {space!r}")


def to_vae_space(space: str, x: torch.Tensor) -> torch.Tensor:
    """Model-space latent -> the raw latent a ComfyUI VAE decodes."""
    fmt = _latent_format(space)
    return x if fmt is None else fmt.process_out(x)


def to_model_space(space: str, x: torch.Tensor) -> torch.Tensor:
    fmt = _latent_format(space)
    return x if fmt is None else fmt.process_in(x)


# ---------------------------------------------------------------------- LATENT helpers
def nested(tensors):
    import comfy.nested_tensor
    return comfy.nested_tensor.NestedTensor(list(tensors))


def split_joint(latent: dict, what: str = "this node") -> Tuple[torch.Tensor, torch.Tensor]:
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if samples is None or not getattr(samples, "is_nested", False):
        shape = list(samples.shape) if torch.is_tensor(samples) else type(samples).__name__
        raise ValueError(f"{what} needs a joint audio-video LATENT (from 'CCL Empty Joint Latent' or "
                         f"'CCL Join Latents'); got a plain latent {shape}")
    parts = samples.unbind()
    if len(parts) != 2:
        raise ValueError(f"{what}: a joint latent holds 2 tensors (video, audio), this one holds {len(parts)}")
    return parts[0], parts[1]


def latent_spec(latent: dict, model=None) -> LatentSpec:
    meta = latent.get(CCL_KEY, {}) if isinstance(latent, dict) else {}
    if "spec" in meta:
        return LatentSpec.from_dict(meta["spec"])
    if model is not None:
        return spec_of(model)
    raise ValueError("this joint latent carries no CCL spec: make it with 'CCL Empty Joint Latent' or "
                     "'CCL Join Latents'")


def spec_of(model) -> LatentSpec:
    """The LatentSpec of a MODEL (ModelPatcher) loaded by the CCL loader."""
    spec = getattr(getattr(model, "model", None), "ccl_spec", None)
    if spec is None:
        raise ValueError("this MODEL is not a CCL / Ovi audio-video model: load it with 'CCL Model Loader'")
    return spec


def make_joint_latent(video, audio, spec: LatentSpec, meta: Optional[dict] = None) -> dict:
    m = {"spec": spec.to_dict(), "task": "t2av"}
    m.update(meta or {})
    return {"samples": nested((video, audio)), CCL_KEY: m}


def fit_batch(x: torch.Tensor, b: int, what: str) -> torch.Tensor:
    if x.shape[0] == b:
        return x
    if x.shape[0] == 1:
        return x.expand(b, *x.shape[1:]).clone()
    raise ValueError(f"{what} has batch {x.shape[0]} but the latent has batch {b}")


def held_streams(latent: dict, what: str = "this node"):
    """(video, audio) of a joint latent with the exact clean values its task held put back (the sampler
    returns them up to rounding): a2v's / v2a's whole conditioning stream, or the first
    meta["prefix"][stream] positions along time (i2av, extend)."""
    video, audio = split_joint(latent, what)
    return restore_held(video, audio, latent.get(CCL_KEY, {}))


def restore_held(video, audio, meta):
    """restore_given (ccl_core.sampling) over what a latent's CCL metadata says was held."""
    clean = meta.get("clean") or {}
    prefix = meta.get("prefix") or {}
    x = {"video": video, "audio": audio}
    given = {name: c.to(x[name]) for name, c in clean.items()
             if name in x and c is not None and c.shape == x[name].shape and prefix.get(name) != 0}
    masks = {name: None if prefix.get(name) is None else prefix_mask(torch.tensor([prefix[name]]), x[name])
             for name in given}
    out = restore_given(x, given, masks)
    return out["video"], out["audio"]
