"""CCL Model Loader: a CCL or Ovi checkpoint -> native MODEL."""

from __future__ import annotations

import logging
import os

import folder_paths
import torch

from ..ccl_core.checkpoint import (DTYPE_NAMES, ST_DTYPES, CheckpointError, check_memory, detect_kind, infer_config,
                                   read_header)
from .common import CATEGORY, DEFAULT_SHIFTS, SHIFT_METADATA_KEY, model_spec, tip
from .comfy_model import model_from_file
from .toyav import EMBEDDED_MODELS, embedded_model_path

log = logging.getLogger("ccl")

FOLDER = "ccl"  # models/ccl, registered by the pack's __init__
SEARCH = (FOLDER, "diffusion_models")
WEIGHT_DTYPES = ["default", "bf16", "fp16", "fp8"]
DEFAULT_SHIFT = 5.0  # Ovi's; ModelSamplingSD3 overrides it


def register_folder() -> None:
    """models/ccl (extra_model_paths.yaml may add `ccl: path`), through folder_paths' functions only."""
    folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER))


def list_checkpoints():
    """The embedded models first (listed even before their file exists), then the user's files."""
    names = []
    for folder in SEARCH:
        try:
            names.extend(folder_paths.get_filename_list(folder))
        except KeyError:
            continue
    return list(EMBEDDED_MODELS) + sorted(set(names))


def resolve(name: str) -> str:
    if name in EMBEDDED_MODELS:
        return embedded_model_path(name)  # a clear FileNotFoundError while the file is not installed
    for folder in SEARCH:
        try:
            path = folder_paths.get_full_path(folder, name)
        except KeyError:
            path = None
        if path:
            return path
    raise FileNotFoundError(f"CCL checkpoint {name!r} not found in models/{FOLDER} or models/diffusion_models")


class CCLModelLoader:
    DESCRIPTION = ("Loads a CCL or Ovi audio-video diffusion model (safetensors from models/ccl or "
                   "models/diffusion_models, or the embedded ToyAV model shipped with the pack) as a native MODEL "
                   "for SamplerCustomAdvanced, KSampler and the CCL guider. The kind of file is recognised from "
                   "its keys and metadata.")
    CATEGORY = f"{CATEGORY}/loaders"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The dual-stream audio-video model (flow matching, shift from the file or 5.0).",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ckpt_name": (list_checkpoints(), tip(
                "CCL or Ovi checkpoint (.safetensors) from models/ccl or models/diffusion_models; Ovi's "
                "file is model.safetensors (720x720, 5 s) or model_960x960*.safetensors. '(embedded) "
                "toyav_ccl' is the small ToyAV model shipped inside the pack (64x64, 16 fps, 2 s, 16 kHz; "
                "use it with the CCL/ToyAV nodes)")),
            "weight_dtype": (WEIGHT_DTYPES, tip(
                "Weight storage: default keeps the file's dtype; bf16/fp16 convert; fp8 stores the block "
                "matrices as float8_e4m3fn (about half the memory of bf16) and computes in bf16",
                default="default")),
        }}

    def load(self, ckpt_name, weight_dtype="default"):
        path = resolve(ckpt_name)
        header = read_header(path)
        kind, what = detect_kind(header)
        if kind not in ("ccl", "ovi"):
            raise CheckpointError(f"{os.path.basename(path)} is {what}, not a CCL or Ovi audio-video model; "
                                  "load it with the loader made for it")
        config = infer_config(header)
        default_shift = DEFAULT_SHIFTS.get(config.name, DEFAULT_SHIFT)
        try:
            shift = float(header.metadata.get(SHIFT_METADATA_KEY, default_shift))
        except ValueError:
            shift = default_shift
        spec = model_spec(config, header.metadata)
        dtype = weight_dtype_of(header, weight_dtype)
        check_memory(header, dtype)  # the weights are read into CPU memory first (ComfyUI's offload device)
        model = model_from_file(header, config, spec, shift, dtype)
        log.info("CCL: loaded %s (%s, %s, %d blocks, width %d)", os.path.basename(path), kind,
                 config.name or "unnamed", config.num_layers, config.dim)
        return (model,)


def weight_dtype_of(header, choice: str) -> torch.dtype:
    """The storage dtype of the block matrices: the file's ('default') or the one asked for."""
    if choice != "default":
        return DTYPE_NAMES[choice]
    probe = header.tensors.get("video_model.blocks.0.self_attn.q.weight") or next(iter(header.tensors.values()))
    return ST_DTYPES[probe.dtype]


NODE_CLASS_MAPPINGS = {"CCLModelLoader": CCLModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"CCLModelLoader": "CCL Model Loader"}
