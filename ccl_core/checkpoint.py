"""Checkpoints: safetensors files that carry their model config, loaded without a second copy.

Loading reads the header first and checks everything it can before any large allocation: every
tensor's byte span (inside the file, the size its shape and dtype need, no overlap), dtypes, kind
of model, the config (field by field, and that the file's tensors can fill it, and that the weights
fit in memory), then missing / unexpected keys and shapes. The model is built on the meta device
and every tensor is read straight from the file into its final buffer (plain reads, no mmap, so
resident memory stays at one copy of the weights plus one tensor in flight).

Scaled-fp8 files (ComfyUI's per-layer `scale_weight` format) are read here too: dequantized on
load (fp8 * scale) for ccl_core, or kept scaled by a model whose layers carry the scales (ComfyUI's
scaled-fp8 ops, see load_weights).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch

from . import context
from .attention import FUSION_GATE
from .config import ModelConfig
from .header import CheckpointError, Header, TensorInfo, metadata_object, read_raw_header
from .jsonconfig import field_problems
from .model import DualStreamModel

FORMAT_KEY = "ccl_format"
CONFIG_KEY = "ccl_config"
FORMAT_VERSION = "1"

ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
    "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
}
TORCH_TO_ST = {v: k for k, v in ST_DTYPES.items()}
LOADABLE_FLOATS = {"F32", "F16", "BF16", "F8_E4M3"}
# Parameters CCL adds to a pretrained pair (an Ovi file lacks them): initialised when missing.
NEW_PARAMETERS = (*context.PARAMETER_NAMES, FUSION_GATE)

DTYPE_NAMES = {
    None: None, "default": None, "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
    "fp8": torch.float8_e4m3fn, "float8_e4m3fn": torch.float8_e4m3fn, "fp8_e4m3fn": torch.float8_e4m3fn,
}


# ---------------------------------------------------------------------- header
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _tensor_info(path: str, name: str, info, base: int, size: int) -> TensorInfo:
    """One header entry, checked: a known dtype, a shape of sizes >= 0, and a byte span of exactly
    the size the shape needs, inside the file."""
    def bad(what):
        return CheckpointError(f"{path}: tensor {name!r} {what}; the file is corrupt or was not written "
                               f"by a safetensors writer")

    if not isinstance(info, dict):
        raise bad(f"has no dtype / shape / data_offsets entry (got {type(info).__name__})")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in ST_DTYPES:
        raise bad(f"has unknown dtype {dtype!r} (known: {', '.join(sorted(ST_DTYPES))})")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise bad(f"has an invalid shape {shape!r} (expected a list of sizes >= 0)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
        raise bad(f"has invalid data_offsets {offsets!r} (expected [start, end] byte offsets)")
    start, end = offsets
    if end < start:
        raise bad(f"has reversed data_offsets [{start}, {end}] (end before start)")
    need = math.prod(shape) * ST_DTYPES[dtype].itemsize
    if end - start != need:
        raise bad(f"spans {end - start} bytes (data_offsets [{start}, {end}]) but its shape {shape} of {dtype} "
                  f"needs {need}")
    if base + end > size:
        raise CheckpointError(f"{path} is truncated: tensor {name!r} ends at byte {base + end} but the file has "
                              f"{size}; download it again")
    return TensorInfo(dtype, tuple(shape), base + start, base + end)


def read_header(path: Union[str, os.PathLike]) -> Header:
    """Parse and validate a safetensors header without reading any tensor data.

    Every tensor's dtype, shape and byte span are checked (see _tensor_info) and no two spans may
    overlap, so reading a tensor can never reinterpret, overrun or share another's bytes.
    """
    path = os.fspath(path)
    header, base, size = read_raw_header(path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: the header's __metadata__ must map names to strings; the file is corrupt")
    tensors = {name: _tensor_info(path, name, info, base, size) for name, info in header.items()}
    spans = sorted((t.start, t.end, name) for name, t in tensors.items() if t.end > t.start)
    for (s0, e0, n0), (s1, e1, n1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise CheckpointError(f"{path}: tensors {n0!r} (bytes {s0 - base}-{e0 - base}) and {n1!r} (bytes "
                                  f"{s1 - base}-{e1 - base}) overlap; the file is corrupt or crafted")
    return Header(path, tensors, metadata)


# ---------------------------------------------------------------------- scaled fp8 (ComfyUI's format)
# A scaled-fp8 file stores some layers' weights as float8_e4m3fn with a per-layer float32 scale:
# weight = fp8 * `<layer>.scale_weight`; `<layer>.scale_input` (optional) scales activations for fp8
# matrix multiplication; the tensor `scaled_fp8` marks the file (two elements: no fp8 matmul).
SCALED_FP8_KEY = "scaled_fp8"
SCALE_WEIGHT, SCALE_INPUT = "scale_weight", "scale_input"
FP8_MAX = float(torch.finfo(torch.float8_e4m3fn).max)  # 448


@dataclass
class ScaledFP8:
    """What a scaled-fp8 file holds besides plain weights."""
    scales: Dict[str, str]  # weight key -> its scale_weight key
    input_scales: Dict[str, str]  # weight key -> its scale_input key
    fp8_matmul: bool  # the marker allows fp8 matrix multiplication (ComfyUI's fp8 optimizations)
    base_dtype: torch.dtype  # the dtype of the file's unscaled float tensors (what it dequantizes to)


def is_scale_key(name: str) -> bool:
    """The scaled-fp8 marker or a per-layer scale (not a model parameter)."""
    return name == SCALED_FP8_KEY or name.endswith(("." + SCALE_WEIGHT, "." + SCALE_INPUT))


def scaled_fp8_info(header: Header) -> Optional[ScaledFP8]:
    """The file's scaled-fp8 layout, checked (None for a plain file).

    Every scale must belong to a float8_e4m3fn weight in the file and hold one value (per layer).
    """
    t = header.tensors
    if not any(is_scale_key(k) for k in t):
        return None
    where = f"{header.path} is a scaled-fp8 file (per-layer scale_weight tensors)"
    marker = t.get(SCALED_FP8_KEY)
    if marker is not None and marker.dtype == "F8_E5M2":
        raise CheckpointError(f"{where} of float8_e5m2 weights; this loader takes scaled float8_e4m3fn (ComfyUI's "
                              "usual fp8_scaled files) or bf16/fp16/fp32 weights: use one of those")
    scales, inputs = {}, {}
    for name, info in t.items():
        for suffix, table in ((SCALE_WEIGHT, scales), (SCALE_INPUT, inputs)):
            if not name.endswith("." + suffix):
                continue
            weight = name[:-len(suffix)] + "weight"
            if weight not in t:
                raise CheckpointError(f"{where}, but {name!r} has no weight {weight!r} in the file; the file is "
                                      "incomplete or was edited")
            if math.prod(info.shape) != 1 or info.dtype not in ("F32", "F16", "BF16"):
                raise CheckpointError(f"{where}, but {name!r} is {info.dtype} {list(info.shape)}; expected one float "
                                      "per layer (per-channel or block scales are another format)")
            if suffix == SCALE_WEIGHT and t[weight].dtype != "F8_E4M3":
                kind = "float8_e5m2" if t[weight].dtype == "F8_E5M2" else t[weight].dtype
                raise CheckpointError(f"{where}, but {weight!r} is stored as {kind}; a scaled weight must be "
                                      "float8_e4m3fn: use ComfyUI's fp8_e4m3fn_scaled file or the bf16 one")
            table[weight] = name
    counts: Dict[str, int] = {}
    for name, info in t.items():
        if not is_scale_key(name) and info.dtype in ("F32", "F16", "BF16"):
            counts[info.dtype] = counts.get(info.dtype, 0) + math.prod(info.shape)
    base = ST_DTYPES[max(counts, key=counts.get)] if counts else torch.bfloat16
    fp8_matmul = marker is not None and math.prod(marker.shape) != 2
    return ScaledFP8(scales, inputs, fp8_matmul, base)


def quantize_fp8(w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(float8_e4m3fn weight, float32 scale) with scale = amax / 448: ComfyUI's per-layer scaled fp8."""
    amax = w.detach().abs().max().float()
    scale = amax / FP8_MAX if amax > 0 else torch.ones((), dtype=torch.float32)
    q = (w.detach().float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale.reshape(())


def dequantize_fp8(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The weight a scaled-fp8 layer holds: fp8 values times their scale (computed in float32)."""
    return (q.float() * scale.float().reshape(())).to(dtype)


def model_view(header: Header) -> Header:
    """The header without the scaled-fp8 marker and scales: the tensors that are model parameters."""
    return Header(header.path, {k: v for k, v in header.tensors.items() if not is_scale_key(k)}, header.metadata)


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


def _ccl_config_dict(header: Header) -> dict:
    """The config a CCL file's metadata carries, as a JSON object (errors name the metadata field)."""
    version = header.metadata[FORMAT_KEY]
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{header.path}: CCL format {version!r}; this version reads format {FORMAT_VERSION!r} "
                              f"(a newer release of the pack may read it)")
    raw = header.metadata.get(CONFIG_KEY)
    if raw is None:
        raise CheckpointError(f"{header.path} is marked as a CCL checkpoint ({FORMAT_KEY}) but its metadata has no "
                              f"{CONFIG_KEY}; it was edited or not written by save_checkpoint")
    return metadata_object(raw, CONFIG_KEY, "ModelConfig fields", where=str(header.path))


def min_parameters(config: ModelConfig) -> int:
    """A lower bound on the parameters a config builds: per tower and block at least the
    self-attention's four dim x dim projections and the FFN's two dim x ffn_dim matrices (true of
    every Wan / Ovi block). It lets a config the file cannot fill be refused before anything is built."""
    d = config.dim
    return 2 * config.num_layers * (4 * d * d + 2 * d * config.ffn_dim)


def check_config_fits(header: Header, config: ModelConfig) -> None:
    """Refuse a config that needs far more parameters than the file's tensors hold (lying metadata)."""
    held = sum(math.prod(t.shape) for t in header.tensors.values())
    need = min_parameters(config)
    if need > held:
        raise CheckpointError(
            f"{header.path}: its config describes a model of at least {need:,} parameters (num_layers="
            f"{config.num_layers}, dim={config.dim}, ffn_dim={config.ffn_dim}) but the file holds {held:,}; "
            f"the config does not belong to these weights")


def infer_config(header: Header, overrides: Optional[dict] = None) -> ModelConfig:
    """The model config: from metadata for CCL files, from key shapes (and file name) for Ovi.

    Every field is checked (unknown, missing, wrong type, out of range) and so is the config's size
    against the file's tensors, each error naming what is wrong, before anything is built.
    """
    overrides = dict(overrides or {})
    kind, what = detect_kind(header)
    if kind == "ccl":
        cfg = _ccl_config_dict(header)
        cfg.update(overrides)
        problems = field_problems(ModelConfig, cfg)
        if problems:
            raise CheckpointError(f"{header.path}: bad model config in metadata {CONFIG_KEY}"
                                  f"{' or overrides' if overrides else ''}: " + "; ".join(problems))
        try:
            config = ModelConfig.from_dict(cfg)
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{header.path}: metadata {CONFIG_KEY}: {e}") from None
    elif kind == "ovi":
        from .ovi import ovi_config_from_header  # Ovi specifics live in one place
        try:
            config = ovi_config_from_header(header, overrides)
        except KeyError as e:
            raise CheckpointError(f"{header.path} looks like {what} but lacks the tensor {e}; the file is "
                                  f"incomplete or another model") from None
        except (IndexError, TypeError, ValueError) as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"{header.path} looks like {what} but its tensors do not give a valid "
                                  f"config: {e}") from None
    else:
        raise CheckpointError(f"{header.path} is {what}; expected a CCL or Ovi audio-video checkpoint "
                              f"(keys video_model.* and audio_model.* with fusion layers)")
    check_config_fits(header, config)
    return config


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


def _check_dtypes(header: Header) -> Optional[ScaledFP8]:
    """Refuse dtypes this loader cannot use; return the file's scaled-fp8 layout (None: a plain file)."""
    scaled = scaled_fp8_info(header)
    bad = {t.dtype for k, t in header.tensors.items() if k != SCALED_FP8_KEY} - LOADABLE_FLOATS
    if "F8_E5M2" in bad:
        raise CheckpointError(f"{header.path} stores float8_e5m2 weights; this loader takes float8_e4m3fn "
                              f"(the format of Ovi's fp8 release) or bf16/fp16/fp32: use that file instead")
    if bad:
        raise CheckpointError(f"{header.path} has tensors of dtype {sorted(bad)}; expected floating-point "
                              f"weights ({sorted(LOADABLE_FLOATS)})")
    return scaled


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

    Scaled fp8: a layer whose module has a `scale_weight` parameter (ComfyUI's scaled-fp8 ops) keeps
    the file's fp8 weight and scale; a layer the file does not scale gets scale 1 (or, when its
    parameter is fp8, its own amax / 448 scale); into any other layer a scaled weight is
    dequantized (fp8 * scale).
    """
    scaled = _check_dtypes(header)
    params = dict(model.named_parameters())
    expected = {k: tuple(p.shape) for k, p in params.items() if not is_scale_key(k)}
    new_params = check_keys(model_view(header), expected, allow_missing=NEW_PARAMETERS)
    scales = scaled.scales if scaled else {}
    inputs = scaled.input_scales if scaled else {}
    with torch.no_grad(), open(header.path, "rb") as f:
        def scale_of(table, name):
            return read_tensor(f, header.tensors[table[name]]) if name in table else None

        for name, info in model_view(header).tensors.items():
            t = read_tensor(f, info)
            layer = name[:-len("weight")] if name.endswith(".weight") else None
            scale_param = params.get(f"{layer}{SCALE_WEIGHT}") if layer else None
            scale = scale_of(scales, name)
            if scale_param is not None:  # the model keeps this layer in scaled fp8
                if scale is None:
                    fp8 = params[name].dtype in (torch.float8_e4m3fn, torch.float8_e5m2)
                    t, scale = quantize_fp8(t) if fp8 else (t, torch.ones(()))
                scale_param.copy_(scale.reshape(scale_param.shape))
                input_param = params.get(f"{layer}{SCALE_INPUT}")
                if input_param is not None:
                    given = scale_of(inputs, name)
                    input_param.copy_(given.reshape(()) if given is not None else torch.ones(()))
            elif scale is not None:
                t = dequantize_fp8(t, scale)
            params[name].copy_(t)
        for name, t in DualStreamModel.fresh_parameters(model.config, new_params).items():
            params[name].copy_(t)
    return new_params


def available_memory(device) -> Optional[int]:
    """Bytes free for weights on `device`: free memory for CUDA, MemAvailable + SwapFree for the CPU
    (Linux; elsewhere the free physical pages); None when the system does not say."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    if dev.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            info = {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f if ":" in line)}
        return info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(header: Header, dtype: Optional[torch.dtype], device="cpu") -> None:
    """Refuse weights that cannot fit: their size after the dtype conversion against free memory."""
    need = sum(math.prod(t.shape) * storage_dtype(name, dtype, ST_DTYPES[t.dtype]).itemsize
               for name, t in header.tensors.items())
    free = available_memory(device)
    if free is not None and need > free:
        raise CheckpointError(f"{header.path}: the weights need {need / 2**30:.2f} GiB on {device} but only "
                              f"{free / 2**30:.2f} GiB are free; free memory or load a smaller weight dtype "
                              f"(bf16, fp8)")


def load_checkpoint(path: Union[str, os.PathLike], dtype: Union[str, torch.dtype, None] = None,
                    device: Union[str, torch.device] = "cpu", overrides: Optional[dict] = None,
                    init_new: Optional[Callable[[DualStreamModel, List[str]], None]] = None) -> DualStreamModel:
    """Build the model a checkpoint describes and fill it with the file's weights.

    dtype: None keeps the stored dtypes (fp8 stays fp8 and is upcast per layer at compute time);
    "bf16", "fp16", "fp32" convert; "fp8" stores the block matrices as float8_e4m3fn.
    A scaled-fp8 file (ComfyUI's per-layer scale_weight format) is dequantized on load (fp8 * scale)
    into `dtype`, or with None into the dtype of its unscaled tensors (bf16 for ComfyUI's files);
    "fp8" is refused for it (re-rounding without the scales would lose range).
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
    scaled = _check_dtypes(header)
    if scaled is not None:
        if dtype == torch.float8_e4m3fn:
            raise CheckpointError(f"{header.path} is a scaled-fp8 file (per-layer scale_weight tensors): outside "
                                  "ComfyUI it is dequantized on load, and plain fp8 storage would drop its scales. "
                                  "Load it with dtype default or bf16 (or load it in ComfyUI, which keeps it in fp8)")
        dtype = dtype or scaled.base_dtype
    check_memory(header, dtype, device)
    with torch.device("meta"):
        model = DualStreamModel(config)
    view = model_view(header)
    new_params = check_keys(view, _expected(model), allow_missing=NEW_PARAMETERS)

    state = {}
    with open(header.path, "rb") as f:
        for name, info in view.tensors.items():
            t = read_tensor(f, info)
            if scaled is not None and name in scaled.scales:
                t = dequantize_fp8(t, read_tensor(f, header.tensors[scaled.scales[name]]))
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
