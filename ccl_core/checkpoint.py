"""Checkpoints: safetensors files that carry their model config, loaded without a second copy.

Loading reads the header first and checks everything it can (truncation, dtypes, kind of model,
missing / unexpected keys, shapes) before any large allocation. The model is built on the meta
device and every tensor is read straight from the file into its final buffer (plain reads, no
mmap, so resident memory stays at one copy of the weights plus one tensor in flight).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch

from .config import ModelConfig
from .model import DualStreamModel

FORMAT_KEY = "ccl_format"
CONFIG_KEY = "ccl_config"
FORMAT_VERSION = "1"

ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
TORCH_TO_ST = {v: k for k, v in ST_DTYPES.items()}
LOADABLE_FLOATS = {"F32", "F16", "BF16", "F8_E4M3"}
# Parameters CCL adds to a pretrained pair (an Ovi file lacks them): initialised when missing.
NEW_PARAMETERS = ("ctx_tokens", "ctx_logit_bias", "fusion_gate")

DTYPE_NAMES = {
    None: None, "default": None, "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
    "fp8": torch.float8_e4m3fn, "float8_e4m3fn": torch.float8_e4m3fn, "fp8_e4m3fn": torch.float8_e4m3fn,
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with what it is and what was expected."""


# ---------------------------------------------------------------------- header
@dataclass
class TensorInfo:
    dtype: str
    shape: Tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int


@dataclass
class Header:
    path: str
    tensors: Dict[str, TensorInfo]
    metadata: Dict[str, str]

    @property
    def nbytes(self) -> int:
        return sum(t.end - t.start for t in self.tensors.values())


def read_header(path: Union[str, os.PathLike]) -> Header:
    """Parse and validate a safetensors header without reading any tensor data."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint not found: {path}")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is not a safetensors file: only {size} bytes long")
        (n,) = struct.unpack("<Q", head)
        if n <= 0 or n > min(size - 8, 100 * 2**20):
            raise CheckpointError(f"{path} is not a valid safetensors file (header length {n} for a "
                                  f"{size}-byte file): corrupt, truncated or another format")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({e}); the file is corrupt") from None
    metadata = header.pop("__metadata__", None) or {}
    base = 8 + n
    tensors = {}
    data_end = 0
    for name, info in header.items():
        try:
            start, end = info["data_offsets"]
            t = TensorInfo(info["dtype"], tuple(int(s) for s in info["shape"]), base + start, base + end)
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: malformed header entry for tensor {name!r}") from None
        tensors[name] = t
        data_end = max(data_end, t.end)
    if data_end > size:
        raise CheckpointError(f"{path} is truncated: its header describes {data_end} bytes but the file has "
                              f"{size}; download it again")
    return Header(path, tensors, metadata)


# ---------------------------------------------------------------------- kinds of checkpoint
def detect_kind(header: Header) -> Tuple[str, str]:
    """(kind, description) from keys and metadata: 'ccl', 'ovi', or a named foreign kind."""
    keys = header.tensors.keys()
    if header.metadata.get(FORMAT_KEY):
        return "ccl", "a CCL dual-stream checkpoint"
    has = lambda prefix: any(k.startswith(prefix) for k in keys)
    if has("video_model.blocks.") and has("audio_model.blocks."):
        if any(".cross_attn.k_fusion." in k for k in keys):
            return "ovi", "an Ovi twin-tower audio-video checkpoint"
        return "dual-no-fusion", "two towers without fusion layers (not Ovi)"
    if has("video_model.") and not has("audio_model."):
        return "video-only", "a video tower alone (video_model.* keys, no audio_model.*)"
    if has("blocks.0.self_attn.q.") or has("model.diffusion_model.blocks.0.self_attn"):
        return "wan", "a single-stream Wan 2.x video model (no audio tower)"
    if has("double_blocks.") or has("model.diffusion_model.double_blocks."):
        return "flux", "a Flux image model"
    if has("model.diffusion_model.input_blocks.") or has("input_blocks."):
        return "sd-unet", "a Stable Diffusion UNet image model"
    if has("encoder.") and has("decoder."):
        return "vae", "an autoencoder (VAE)"
    return "unknown", f"an unrecognised model ({len(header.tensors)} tensors, e.g. {sorted(keys)[:3]})"


def infer_config(header: Header, overrides: Optional[dict] = None) -> ModelConfig:
    """The model config: from metadata for CCL files, from key shapes (and file name) for Ovi."""
    overrides = dict(overrides or {})
    kind, what = detect_kind(header)
    if kind == "ccl":
        cfg = json.loads(header.metadata[CONFIG_KEY])
        cfg.update(overrides)
        return ModelConfig.from_dict(cfg)
    if kind == "ovi":
        from .ovi import ovi_config_from_header  # Ovi specifics live in one place
        return ovi_config_from_header(header, overrides)
    raise CheckpointError(f"{header.path} is {what}; expected a CCL or Ovi audio-video checkpoint "
                          f"(keys video_model.* and audio_model.* with fusion layers)")


# ---------------------------------------------------------------------- save
def save_checkpoint(model: DualStreamModel, path: Union[str, os.PathLike], metadata: Optional[dict] = None,
                    dtype: Optional[torch.dtype] = None) -> None:
    """Write weights and config to one safetensors file (written to a temp name, then renamed)."""
    from safetensors.torch import save_file

    path = os.fspath(path)
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        state[k] = v.contiguous().cpu()
    meta = {FORMAT_KEY: FORMAT_VERSION, CONFIG_KEY: model.config.to_json()}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    tmp = path + ".tmp"
    save_file(state, tmp, metadata=meta)
    os.replace(tmp, path)


# ---------------------------------------------------------------------- load
def _expected(model: DualStreamModel) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_keys(header: Header, expected: Dict[str, Tuple[int, ...]], allow_missing: Iterable[str] = ()) -> List[str]:
    """Raise one CheckpointError listing missing, unexpected and mis-shaped keys; return the allowed missing."""
    allow = tuple(allow_missing)
    present = header.tensors
    missing = [k for k in expected if k not in present]
    allowed = [k for k in missing if any(a in k for a in allow)]
    missing = [k for k in missing if k not in allowed]
    unexpected = [k for k in present if k not in expected]
    shapes = [f"{k}: file {list(present[k].shape)} vs model {list(expected[k])}"
              for k in expected if k in present and tuple(present[k].shape) != expected[k]]
    if missing or unexpected or shapes:
        _, what = detect_kind(header)

        def listing(title, items):
            if not items:
                return ""
            more = f" ... and {len(items) - 5} more" if len(items) > 5 else ""
            return f"\n  {title} ({len(items)}): " + ", ".join(items[:5]) + more

        raise CheckpointError(
            f"{header.path} does not fit the model: the file looks like {what}."
            + listing("missing keys", missing) + listing("unexpected keys", unexpected)
            + listing("shape mismatches", shapes))
    return allowed


def _check_dtypes(header: Header) -> None:
    if "scaled_fp8" in header.tensors or any(k.endswith(".scale_weight") for k in header.tensors):
        raise CheckpointError(f"{header.path} is a scaled-fp8 file (per-layer scale_weight tensors); this loader "
                              "takes plain float8_e4m3fn (Ovi's fp8 release), bf16, fp16 or fp32 weights: use one of "
                              "those, or load the bf16 file with weight dtype fp8")
    bad = {t.dtype for t in header.tensors.values()} - LOADABLE_FLOATS
    if "F8_E5M2" in bad:
        raise CheckpointError(f"{header.path} stores float8_e5m2 weights; this loader takes float8_e4m3fn "
                              f"(the format of Ovi's fp8 release) or bf16/fp16/fp32: use that file instead")
    if bad:
        raise CheckpointError(f"{header.path} has tensors of dtype {sorted(bad)}; expected floating-point "
                              f"weights ({sorted(LOADABLE_FLOATS)})")


def read_tensor(f, info: TensorInfo, device="cpu") -> torch.Tensor:
    """Read one tensor with a plain file read into a fresh buffer (no mmap)."""
    dtype = ST_DTYPES[info.dtype]
    count = info.end - info.start
    buf = torch.empty(count, dtype=torch.uint8)
    f.seek(info.start)
    got = f.readinto(memoryview(buf.numpy()))
    if got != count:
        raise CheckpointError(f"short read at byte {info.start}: the file is truncated or changed while loading")
    t = buf.view(dtype).reshape(info.shape)
    return t if str(device) == "cpu" else t.to(device)


def storage_dtype(name: str, want: Optional[torch.dtype], stored: Optional[torch.dtype] = None) -> torch.dtype:
    """The dtype parameter `name` is kept in when the weights are asked for in `want`.

    None keeps the stored dtype. fp8 is only used for the big block matrices; norms, biases, tables
    and embeddings stay in 16/32 bit (as stored, or bf16 when the stored dtype is unknown or fp8).
    """
    if want is None:
        return stored
    big_matrix = name.endswith(".weight") and ".blocks." in name and "norm" not in name
    if want == torch.float8_e4m3fn and not big_matrix:
        return stored if stored in (torch.float32, torch.bfloat16, torch.float16) else torch.bfloat16
    return want


def load_weights(model: DualStreamModel, header: Header) -> List[str]:
    """Stream a checkpoint's tensors into a model whose parameters already have their storage.

    Each tensor is read and copied (converting its dtype) into its parameter before the next one
    is read, so memory holds one copy of the weights plus one tensor in flight. Parameters the file
    lacks that CCL adds (context tokens, gates) get their initial values; their names are returned.
    """
    _check_dtypes(header)
    params = dict(model.named_parameters())
    new_params = check_keys(header, {k: tuple(p.shape) for k, p in params.items()}, allow_missing=NEW_PARAMETERS)
    with torch.no_grad(), open(header.path, "rb") as f:
        for name, info in header.tensors.items():
            params[name].copy_(read_tensor(f, info))
        for name, t in DualStreamModel.fresh_parameters(model.config, new_params).items():
            params[name].copy_(t)
    return new_params


def load_checkpoint(path: Union[str, os.PathLike], dtype: Union[str, torch.dtype, None] = None,
                    device: Union[str, torch.device] = "cpu", overrides: Optional[dict] = None,
                    init_new: Optional[Callable[[DualStreamModel, List[str]], None]] = None) -> DualStreamModel:
    """Build the model a checkpoint describes and fill it with the file's weights.

    dtype: None keeps the stored dtypes (fp8 stays fp8 and is upcast per layer at compute time);
    "bf16", "fp16", "fp32" convert; "fp8" stores the block matrices as float8_e4m3fn.
    overrides: config fields to change (e.g. CCL switches on an Ovi checkpoint). Parameters the
    config adds that the file lacks (context tokens, gates) are initialised by `init_new`, or by
    the model's own initialisation when it is None.
    """
    if isinstance(dtype, str) or dtype is None:
        if dtype not in DTYPE_NAMES:
            raise CheckpointError(f"Unknown weight dtype {dtype!r}; expected one of {sorted(k for k in DTYPE_NAMES if k)}")
        dtype = DTYPE_NAMES[dtype]
    header = read_header(path)
    config = infer_config(header, overrides)
    _check_dtypes(header)
    with torch.device("meta"):
        model = DualStreamModel(config)
    new_params = check_keys(header, _expected(model), allow_missing=NEW_PARAMETERS)

    state = {}
    with open(header.path, "rb") as f:
        for name, info in header.tensors.items():
            t = read_tensor(f, info)
            target = storage_dtype(name, dtype, t.dtype)
            if t.dtype != target:
                t = t.to(target)
            state[name] = t.to(device) if str(device) != "cpu" else t
    if new_params:
        fresh = DualStreamModel.fresh_parameters(config, new_params, like=state)
        state.update(fresh)
    model.load_state_dict(state, strict=True, assign=True)
    if new_params and init_new is not None:
        init_new(model, new_params)
    if dtype is not None and dtype != torch.float8_e4m3fn:
        model.compute_dtype = dtype
    model.checkpoint_kind = detect_kind(header)[0]
    model.eval()
    return model
