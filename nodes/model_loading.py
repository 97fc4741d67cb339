"""CCL Model Loader: a CCL or Ovi checkpoint -> native MODEL."""

from __future__ import annotations

import logging
import os

import folder_paths

import torch

from ..ccl_core.checkpoint import DTYPE_NAMES, ST_DTYPES, check_memory, detect_kind, infer_config, read_header, \
    scaled_fp8_info
from ..ccl_core.header import CheckpointError
from ..ccl_core.latent_spec import model_shift, model_spec
from .api import io
from .comfy_model import WEIGHT_DTYPE_KEY, model_from_file, scaled_fp8_route, with_block_swap
from .runtime import CATEGORY
from .toyav import EMBEDDED_MODELS, embedded_path

log = logging.getLogger("ccl")

FOLDER = "ccl"  # models/ccl, registered by the pack's __init__
SEARCH = (FOLDER, "diffusion_models")
FOLDER_EXTENSIONS = (".safetensors", ".sft")  # the files listed from models/ccl
WEIGHT_DTYPES = ["default", "bf16", "fp16", "fp8"]


def register_folder() -> None:
    """models/ccl as the first folder of the "ccl" model list (extra_model_paths.yaml may add `ccl: path`).

    Through folder_paths' functions only: ComfyUI LTS keeps its folder table in an object of its own.
    """
    folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER), is_default=True)


def _folder_files(folder: str):
    """The .safetensors / .sft files under a registered folder's paths, relative to their path.

    Read from the folder's paths (get_folder_paths) rather than get_filename_list, whose answer for a
    folder registered without extensions differs: every file on upstream ComfyUI, none on ComfyUI LTS.
    """
    try:
        roots = folder_paths.get_folder_paths(folder)
    except KeyError:
        return []
    names = []
    for root in roots:
        for dirpath, dirnames, files in os.walk(root, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            names.extend(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/") for f in files
                         if os.path.splitext(f)[1].lower() in FOLDER_EXTENSIONS)
    return names


def list_checkpoints():
    """The embedded models first (listed even before their file exists), then the user's files."""
    names = _folder_files(FOLDER)
    try:
        names.extend(folder_paths.get_filename_list("diffusion_models"))
    except KeyError:
        pass
    return list(EMBEDDED_MODELS) + sorted(set(names))


def resolve(name: str) -> str:
    if name in EMBEDDED_MODELS:
        return embedded_path(name)  # a clear FileNotFoundError while the file is not installed
    for folder in SEARCH:
        try:
            path = folder_paths.get_full_path(folder, name)
        except KeyError:
            path = None
        if path:
            return path
    raise FileNotFoundError(f"CCL checkpoint {name!r} not found in models/{FOLDER} or models/diffusion_models")


def load_model(ckpt_name: str, weight_dtype: str = "default", resident_blocks: int = -1):
    """The checkpoint `ckpt_name` as a native MODEL (ModelPatcher) with weights stored in `weight_dtype`.

    ComfyUI builds the model (comfy.ops layers, its attention) and the file's tensors are streamed
    into it; `resident_blocks` >= 0 keeps only that many block pairs on the GPU (with_block_swap).
    """
    path = resolve(ckpt_name)
    header = read_header(path)
    kind, what = detect_kind(header)
    if kind not in ("ccl", "ovi"):
        raise CheckpointError(f"{os.path.basename(path)} is {what}, not a CCL or Ovi audio-video model; "
                              "load it with the loader made for it")
    config = infer_config(header)
    shift = model_shift(header.metadata)  # the file's, else Ovi's (ModelSamplingSD3 overrides it)
    spec = model_spec(config, header.metadata)
    dtype = weight_dtype_of(header, weight_dtype)
    check_memory(header, dtype)  # the weights are read into CPU memory first (ComfyUI's offload device)
    model = model_from_file(header, config, spec, shift, dtype)
    scaled = "" if scaled_fp8_info(header) is None else \
        f", scaled fp8 {scaled_fp8_route() if dtype == torch.float8_e4m3fn else 'dequantize'}"
    log.info("CCL: loaded %s (%s, %s, %d blocks, width %d%s)", os.path.basename(path), kind,
             config.name or "unnamed", config.num_layers, config.dim, scaled)
    return model if resident_blocks == -1 else with_block_swap(model, resident_blocks)


def weight_dtype_of(header, choice: str) -> torch.dtype:
    """The storage dtype of the block matrices: the file's ('default') or the one asked for.

    A scaled-fp8 file's is fp8 (kept scaled by ComfyUI's ops); bf16 / fp16 dequantize it.
    """
    if choice != "default":
        return DTYPE_NAMES[choice]
    if scaled_fp8_info(header) is not None:
        return torch.float8_e4m3fn
    probe = header.tensors.get(WEIGHT_DTYPE_KEY) or next(iter(header.tensors.values()))
    return ST_DTYPES[probe.dtype]


class CCLModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLModelLoader",
            display_name="CCL Model Loader",
            category=f"{CATEGORY}/loaders",
            description=("Loads a CCL or Ovi audio-video diffusion model (safetensors from models/ccl or "
                         "models/diffusion_models, or the embedded ToyAV model shipped with the pack) as a native "
                         "MODEL for SamplerCustomAdvanced, KSampler and the CCL guider. The kind of file is "
                         "recognised from its keys and metadata."),
            inputs=[
                io.Combo.Input("ckpt_name", options=list_checkpoints(), tooltip=(
                    "CCL or Ovi checkpoint (.safetensors) from models/ccl or models/diffusion_models; Ovi's "
                    "file is model.safetensors (720x720, 5 s) or model_960x960*.safetensors. '(embedded) "
                    "toyav_ccl' is the small ToyAV model shipped inside the pack (64x64, 16 fps, 2 s, 16 kHz; "
                    "use it with the CCL/ToyAV nodes)")),
                io.Combo.Input("weight_dtype", options=WEIGHT_DTYPES, default="default", tooltip=(
                    "Weight storage: default keeps the file's dtype; bf16/fp16 convert; fp8 stores the block "
                    "matrices as float8_e4m3fn (about half the memory of bf16) and computes in bf16. A scaled-fp8 "
                    "file (per-layer scale_weight) stays scaled fp8 with default/fp8 through ComfyUI's own fp8 ops; "
                    "bf16/fp16 dequantize it")),
                io.Int.Input("resident_blocks", default=-1, min=-1, max=1024, optional=True, tooltip=(
                    "Block swap: how many block pairs stay on the GPU; the others are copied in layer by layer "
                    "while they run (ComfyUI's lowvram casting). -1: ComfyUI's memory manager decides (it also "
                    "offloads on its own when the model does not fit; --reserve-vram leaves room)")),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip=(
                "The dual-stream audio-video model (flow matching, shift from the file or 5.0)."))],
        )

    @classmethod
    def execute(cls, ckpt_name, weight_dtype="default", resident_blocks=-1):
        return io.NodeOutput(load_model(ckpt_name, weight_dtype, resident_blocks))


NODES = [CCLModelLoader]
