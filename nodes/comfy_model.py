"""The MODEL adapter: a native ComfyUI model whose diffusion model is ccl_core's DualStreamModel.

It is created the way ComfyUI creates its own models: a model config (`CCLModelConfig`) whose
`get_model` builds a BaseModel, which builds the diffusion model through the `unet_model` factory
with the `operations` ComfyUI picked (comfy.ops: manual cast, fp8, LoRA weight patches, lowvram
partial loading) and ComfyUI's attention dispatcher (the --use-*-attention launch flags). The
diffusion model's state dict has Ovi's layout (`video_model.*`, `audio_model.*`), so native LoRA
loaders find `diffusion_model.video_model.blocks.N...` keys (and `lora_unet_*`).

Native sampling (SamplerCustomAdvanced, KSampler, any CFGGuider) packs the joint latent into one
[B, 1, N] tensor; because `extra_conds` returns `latent_shapes`, BaseModel._apply_model unpacks it
into [video, audio] before calling the diffusion model and packs the returned pair again. Model
type FLOW gives `x0 = x - sigma * v`, the rectified-flow convention of ccl_core (v = noise - x0).

Our keys in a CONDITIONING dict reach `extra_conds` (every key of the dict does) and are turned
into per-row tensors that batch across conds, so one model call can mix tasks and guidance branches:
  ccl_task        task name (t2av, t2v, t2a, a2v, v2a, i2av, extend), default t2av
  ccl_clean_video / ccl_clean_audio   clean latent (model space, the stream's shape): the conditioning
                  stream of v2a / a2v, or one whose leading part is a clean prefix (i2av, extend)
  ccl_prefix_video / ccl_prefix_audio int: the clean prefix's length in latent frames / audio latents
                  (extend; i2av's one frame comes from routing.TASKS), 0 none
  ccl_ctx_only    bool: force the context-tokens-only route (UCG's unconditional branches)
  ccl_skip        int: fusion block to skip for this cond (Ovi's skip-layer guidance), -1 none
  ccl_null_text   bool: use the model's null text (zeros; ToyAV: the empty prompt) instead of the cond's text
  ccl_text_audio  text of the audio tower when it differs from the video tower's (the guider's negative_audio)
"""

from __future__ import annotations

import logging
import math
from typing import Dict, Optional

import torch
import torch.nn as nn

import comfy.conds
import comfy.latent_formats
import comfy.ldm.modules.attention
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.ops
import comfy.supported_models_base
import comfy.utils

from ..ccl_core.checkpoint import (NEW_PARAMETERS, SCALE_INPUT, SCALE_WEIGHT, SCALED_FP8_KEY, ScaledFP8, check_keys,
                                   load_weights, model_view, read_tensor, scaled_fp8_info, storage_dtype)
from ..ccl_core.config import ModelConfig
from ..ccl_core.header import CheckpointError, Header
from ..ccl_core.latent_spec import LatentSpec, null_text_for
from ..ccl_core.layers import TorchOps
from ..ccl_core.model import DualStreamModel
from ..ccl_core.routing import make_routes, prefix_mask, task_index, task_names
from ..ccl_core.sampling import restore_held

log = logging.getLogger("ccl")

_LAYERS = tuple(n for n in vars(TorchOps) if not n.startswith("_"))  # the layer types ccl_core builds from
# The first block matrix: its dtype is a checkpoint's weight dtype (fp8 files keep small tensors in 16 bit).
WEIGHT_DTYPE_KEY = "video_model.blocks.0.self_attn.q.weight"


def comfy_attention(q, k, v, scale=None):
    """ccl_core's attention contract ([B, H, L, D], SDPA's `scale`) over ComfyUI's dispatcher.

    The dispatcher (chosen by --use-sage-attention / --use-flash-attention /
    --use-pytorch-cross-attention) always scales by 1/sqrt(head_dim); another scale is folded
    into q. It is looked up at call time, so it is whatever ComfyUI selected at start-up.
    """
    if scale is not None:
        q = q * (scale * q.shape[-1] ** 0.5)
    return comfy.ldm.modules.attention.optimized_attention(q, k, v, heads=q.shape[1], skip_reshape=True,
                                                           skip_output_reshape=True)


def layer_ops(operations):
    """The operations namespace ccl_core builds from: ComfyUI's layer types where it has them.

    Some of ComfyUI's namespaces lack a type (no RMSNorm in every version's skip-init set); those
    layers come from ccl_core, whose layers cast their weights to the input at call time.
    """
    if operations is None:
        return TorchOps
    return type("CCLComfyOps", (), {n: getattr(operations, n, getattr(TorchOps, n)) for n in _LAYERS})


def _check_interrupt(block: int) -> None:
    comfy.model_management.throw_exception_if_processing_interrupted()


class CCLDualStream(DualStreamModel):
    """The `unet_model` ComfyUI's BaseModel builds: a DualStreamModel called with ComfyUI's signature.

    Built on the meta device and given empty storage in each parameter's dtype (the big block
    matrices in `dtype`, everything else in a 16/32-bit float; ccl_core.checkpoint.storage_dtype),
    so that the weights are read straight into their final buffers afterwards, one copy in memory.
    """

    def __init__(self, ccl_config: dict, dtype=None, device=None, operations=None, ccl_fp8_layers=None, **_):
        config = ModelConfig.from_dict(ccl_config)
        with torch.device("meta"):
            super().__init__(config, operations=layer_ops(operations), attention=comfy_attention, initialize=False)
        self.dtype = dtype or torch.float32  # storage dtype: BaseModel.get_dtype() reads it
        self.before_block = _check_interrupt  # /interrupt lands within one block pair, not one step
        device = torch.device("cpu") if device is None else device
        for name, p in list(self.named_parameters()):
            owner, _, leaf = name.rpartition(".")
            # dtypes comfy.ops chose itself are kept: scaled-fp8 layers' float32 scales and fp8 weights, but
            # only the weights a scaled-fp8 file stores in fp8 (`ccl_fp8_layers`): biases and the layers it
            # keeps unscaled stay wide (scale 1; the ops cast any dtype), not rounded to fp8 as 0.3.x would
            fp8 = leaf == "weight" and p.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) \
                and (ccl_fp8_layers is None or name in ccl_fp8_layers)
            kept = fp8 or leaf in (SCALE_WEIGHT, SCALE_INPUT)
            self.get_submodule(owner)._parameters[leaf] = nn.Parameter(
                torch.empty(p.shape, dtype=p.dtype if kept else storage_dtype(name, self.dtype), device=device),
                requires_grad=False)
        self.eval()

    def forward(self, x, timestep, context=None, control=None, transformer_options={}, ccl_task=None,
                ccl_ctx_only=None, ccl_skip=None, ccl_clean_video=None, ccl_clean_audio=None, ccl_prefix_video=None,
                ccl_prefix_audio=None, ccl_text_audio=None, **kwargs):
        if torch.is_tensor(x):
            raise ValueError("a CCL model takes a joint audio-video latent; make it with 'CCL Empty Joint "
                             f"Latent' (got a plain latent {list(x.shape)})")
        if len(x) != 2:
            raise ValueError(f"a joint latent holds (video, audio); got {len(x)} tensors")
        video, audio = x
        batch = video.shape[0]
        device = video.device
        self.compute_dtype = video.dtype  # ComfyUI casts the inputs to the compute dtype it chose
        sigma = timestep.float().to(device) / 1000.0
        if sigma.ndim == 0:
            sigma = sigma.expand(batch)
        ids = torch.zeros(batch, dtype=torch.long, device=device) if ccl_task is None else ccl_task.to(device).long()
        tasks = task_names(ids.tolist())
        counts = {n: None if c is None else c.to(device).long().flatten()
                  for n, c in (("video", ccl_prefix_video), ("audio", ccl_prefix_audio))}
        routes = make_routes(tasks, batch, device=device, video_prefix=counts["video"], audio_prefix=counts["audio"])
        inputs = {"video": video, "audio": audio}
        cleans = {"video": ccl_clean_video, "audio": ccl_clean_audio}
        holds = {name: held_positions(routes, name, inputs[name], cleans[name], tasks) for name in inputs}
        given = {name: g for name, (_, g, _) in holds.items() if g is not None}
        # the model reads the clean latent where it is given (timestep 0 there)
        inputs = restore_held(inputs, {n: holds[n][2].to(inputs[n].dtype) for n in given}, given)
        ctx_only = None if ccl_ctx_only is None else ccl_ctx_only.to(device).bool()
        skip_block = skip_rows = None
        if ccl_skip is not None:
            skip = ccl_skip.to(device).long()
            if bool((skip >= 0).any()):
                blocks = torch.unique(skip[skip >= 0]).tolist()
                if len(blocks) > 1:
                    raise ValueError(f"one batch can skip only one fusion block, got {blocks}")
                skip_block, skip_rows = int(blocks[0]), skip >= 0
        v_video, v_audio = super().forward(inputs["video"], inputs["audio"], sigma, sigma, context, tasks=routes,
                                           ctx_only=ctx_only, skip_block=skip_block, skip_rows=skip_rows,
                                           text_audio=ccl_text_audio)
        out = {"video": v_video, "audio": v_audio}
        # What the task does not generate is held by the model itself, with no sampler mask (ComfyUI versions
        # read a mask over a joint latent differently, and a mask would not reach every guider): on held
        # positions the velocity is the one whose denoised value (x - sigma * v) is the clean latent (a2v's
        # audio, v2a's video, i2av's first frame, an extension's overlap) or zeros (an absent stream), so any
        # sampler lands there.
        for name, x_in in (("video", video), ("audio", audio)):
            mask, where, clean = holds[name]
            if mask is None:
                continue
            target = torch.zeros_like(x_in, dtype=torch.float32)
            if where is not None:
                target = restore_held({name: target}, {name: clean.float()}, {name: where})[name]
            s = sigma.view((-1,) + (1,) * (x_in.ndim - 1)).float()
            v_hold = torch.where(s > 0, (x_in.float() - target) / s.clamp_min(1e-12), torch.zeros_like(target))
            out[name] = torch.where(mask, v_hold.to(out[name].dtype), out[name])
        return [out["video"], out["audio"]]


def held_positions(routes, name: str, x: torch.Tensor, clean: Optional[torch.Tensor], tasks):
    """(held mask, mask of the positions whose clean latent is given, that clean latent) of one stream, each
    broadcastable to x; None where nothing is held. Held: a clean stream (a2v, v2a) and a clean prefix
    (i2av, extend), both at the given latent, and an absent stream (t2v, t2a), at zeros."""
    view = (-1,) + (1,) * (x.ndim - 1)
    whole = getattr(routes, f"{name}_clean").view(view)
    given = whole | prefix_mask(getattr(routes, f"{name}_prefix"), x)
    absent = ~getattr(routes, f"{name}_present").view(view)
    if not bool(given.any()):
        return (absent if bool(absent.any()) else None), None, None
    if clean is None:
        row = int(given.flatten(1).any(1).nonzero()[0])
        raise ValueError(f"task {tasks[row]} needs the clean {name} latent; set it with the CCL task node "
                         "(or CCL Extend)")
    clean = clean.to(x.device)
    if clean.shape != x.shape:
        raise ValueError(f"clean {name} latent {list(clean.shape)} does not match the joint latent's {name} "
                         f"{list(x.shape)}; run the task node on this latent")
    return given | absent, given, clean


class ZeroPadCrossAttn(comfy.conds.CONDCrossAttn):
    """Text cond that batches texts of different token counts by zero padding.

    ComfyUI's CONDCrossAttn pads by repeating the tokens, which changes what a Wan/Ovi text
    cross-attention sees; the CCL towers pad text with zeros (as Wan does), so zero padding keeps
    each row's result equal to running it alone.
    """

    def can_concat(self, other):
        a, b = self.cond.shape, other.cond.shape
        return a[0] == b[0] and a[2] == b[2] and self.cond.device == other.cond.device

    def concat(self, others):
        conds = [self.cond] + [o.cond for o in others]
        n = max(c.shape[1] for c in conds)
        out = [c if c.shape[1] == n else torch.cat([c, c.new_zeros(c.shape[0], n - c.shape[1], c.shape[2])], 1)
               for c in conds]
        return torch.cat(out)


class CCLModelConfig(comfy.supported_models_base.BASE):
    """The model config ComfyUI builds a CCL / Ovi model from (one per loaded checkpoint)."""

    unet_config = {}
    unet_extra_config = {}
    sampling_settings = {"shift": 5.0, "multiplier": 1000}
    latent_format = comfy.latent_formats.LatentFormat  # identity: the packed latent must not be rescaled
    memory_usage_factor = 1.0
    supported_inference_dtypes = [torch.bfloat16, torch.float16, torch.float32]

    def __init__(self, config: ModelConfig, spec: LatentSpec, shift: float):
        super().__init__({"ccl_config": config.to_dict()})
        self.sampling_settings["shift"] = float(shift)
        self.ccl_spec = spec

    def get_model(self, state_dict=None, prefix="", device=None):
        return CCLBaseModel(self, device=device)


class CCLBaseModel(comfy.model_base.BaseModel):
    def __init__(self, model_config: CCLModelConfig, device=None):
        super().__init__(model_config, comfy.model_base.ModelType.FLOW, device=device, unet_model=CCLDualStream)
        self.ccl_spec = model_config.ccl_spec
        self._warned_text = False

    @property
    def ccl_config(self) -> ModelConfig:
        return self.diffusion_model.config

    def extra_conds(self, **kwargs):
        out = super().extra_conds(**kwargs)
        text = kwargs.get("cross_attn")
        if text is not None:
            if kwargs.get("ccl_null_text", False):
                text = null_text_for(self.ccl_spec, text)
            out["c_crossattn"] = ZeroPadCrossAttn(self._fit_text(text))
        text_audio = kwargs.get("ccl_text_audio")
        if text_audio is not None:
            out["ccl_text_audio"] = ZeroPadCrossAttn(self._fit_text(text_audio))
        shapes = kwargs.get("latent_shapes")
        if shapes is not None:
            out["latent_shapes"] = comfy.conds.CONDConstant(shapes)
        out["ccl_task"] = comfy.conds.CONDRegular(
            torch.tensor([task_index(kwargs.get("ccl_task", "t2av"))], dtype=torch.long))
        out["ccl_ctx_only"] = comfy.conds.CONDRegular(
            torch.tensor([int(bool(kwargs.get("ccl_ctx_only", False)))], dtype=torch.long))
        out["ccl_skip"] = comfy.conds.CONDRegular(torch.tensor([int(kwargs.get("ccl_skip", -1))], dtype=torch.long))
        for name in ("video", "audio"):
            clean = kwargs.get(f"ccl_clean_{name}")
            if clean is not None:
                out[f"ccl_clean_{name}"] = comfy.conds.CONDRegular(clean)
            # always set (0: none), so that conds with and without a prefix still batch together
            out[f"ccl_prefix_{name}"] = comfy.conds.CONDRegular(
                torch.tensor([int(kwargs.get(f"ccl_prefix_{name}", 0))], dtype=torch.long))
        return out

    def _fit_text(self, text: torch.Tensor) -> torch.Tensor:
        """The text cut to the tokens the model reads (warned once)."""
        limit = self.ccl_config.text_len
        if text.shape[1] > limit:
            if not self._warned_text:
                log.warning("CCL: text has %d tokens, the model reads %d: the rest is cut", text.shape[1], limit)
                self._warned_text = True
            text = text[:, :limit]
        return text

    def memory_required(self, input_shape, cond_shapes={}):
        """Bytes for one forward at this (packed [B, 1, N]) input shape.

        Activations are linear in the token count (attention goes through fused kernels that need
        no tokens x tokens matrix); tokens are estimated from the element count with the video
        patch, since video holds almost all elements.
        """
        cfg = self.ccl_config
        batch = int(input_shape[0])
        elements = math.prod(int(s) for s in input_shape[1:])
        tokens = elements / (cfg.video_channels * math.prod(cfg.video_patch)) * 1.1 + 64
        size = comfy.model_management.dtype_size(self.manual_cast_dtype or self.get_dtype())
        per_token = (8 * cfg.dim + 3 * cfg.ffn_dim) * size + 4 * cfg.dim * 4  # activations + fp32 norms
        return batch * tokens * per_token * 1.2 + 256 * 2**20


BLOCK_SWAP_KEY = "ccl_block_swap"


def offload_blocks(diffusion_model: DualStreamModel, resident: int, offload_device) -> int:
    """Move block pairs from `resident` on to the offload device, their layers cast per call.

    This is ComfyUI's own lowvram mechanism (comfy.ops layers with comfy_cast_weights copy their
    weights to the compute device at each call, LoRA patches applied on the fly), applied by block
    pair: the first `resident` pairs, the embeddings and heads stay where ComfyUI loaded them.
    Returns the number of layers switched to casting.
    """
    switched = 0
    n = diffusion_model.config.num_layers
    for i in range(max(resident, 0), n):
        for block in (diffusion_model.video_model.blocks[i], diffusion_model.audio_model.blocks[i]):
            for m in block.modules():
                if hasattr(m, "comfy_cast_weights"):
                    if not hasattr(m, "prev_comfy_cast_weights"):  # ComfyUI restores it when it unloads
                        m.prev_comfy_cast_weights = m.comfy_cast_weights
                    m.comfy_cast_weights = True
                    switched += 1
                # through the module's own _apply, as Module.to does: quantized layers (0.12+'s mixed-precision
                # ops) re-wrap their QuantizedTensor weights there, which a plain `p.data =` would not
                m._apply(lambda t: t.to(offload_device), recurse=False)
    return switched


def with_block_swap(patcher, resident: int):
    """A clone of the MODEL that keeps only `resident` block pairs on the GPU (-1: ComfyUI decides).

    Runs after every load of the model (CallbacksMP.ON_LOAD), so it holds whatever ComfyUI's
    memory manager chose for the rest.
    """
    import comfy.patcher_extension

    n = patcher.model.diffusion_model.config.num_layers
    if resident < -1 or resident > n:
        raise ValueError(f"resident block pairs must be -1 (ComfyUI decides) or 0..{n} for this model, got {resident}")
    model = patcher.clone()
    model.remove_callbacks_with_key(comfy.patcher_extension.CallbacksMP.ON_LOAD, BLOCK_SWAP_KEY)
    if resident in (-1, n):
        return model

    def on_load(mp, device_to, *_):
        if device_to is not None and torch.device(device_to) != torch.device(mp.offload_device):
            swapped = offload_blocks(mp.model.diffusion_model, resident, mp.offload_device)
            log.info("CCL: block swap keeps %d of %d block pairs on %s (%d layers cast per call)",
                     resident, n, device_to, swapped)

    model.add_callback_with_key(comfy.patcher_extension.CallbacksMP.ON_LOAD, BLOCK_SWAP_KEY, on_load)
    return model


def scaled_fp8_route() -> str:
    """How this ComfyUI runs a scaled-fp8 checkpoint (per-layer scale_weight) natively, by its features.

    "mixed_precision" (0.12 and later): comfy.utils.convert_old_quants turns the file's scales into
    per-layer quant configs that comfy.ops.mixed_precision_ops' Linear layers load (a model config
    with quant_config). "scaled_fp8" (0.3.x): comfy.ops.scaled_fp8_ops, picked by the model config's
    scaled_fp8 dtype, keeps each layer's fp8 weight and scale_weight. "dequantize": neither; the
    weights are dequantized on load (fp8 * scale) into the file's 16-bit dtype.
    """
    base = comfy.supported_models_base.BASE
    if all(hasattr(comfy.utils, f) for f in ("convert_old_quants", "detect_layer_quantization")) \
            and hasattr(comfy.ops, "mixed_precision_ops") and hasattr(base, "quant_config"):
        return "mixed_precision"
    if hasattr(comfy.ops, "scaled_fp8_ops") and hasattr(base, "scaled_fp8"):
        return "scaled_fp8"
    return "dequantize"


def create_model(config: ModelConfig, spec: LatentSpec, shift: float, weight_dtype: Optional[torch.dtype],
                 quant: Optional[tuple] = None, params: int = 0):
    """A ModelPatcher around an empty CCLBaseModel, with ComfyUI's choice of compute dtype.

    quant: how a scaled-fp8 file is kept, ("scaled_fp8", ScaledFP8) or ("mixed_precision", quant
    config); the model config is then set up as ComfyUI's load_diffusion_model_state_dict does for
    such a file: ComfyUI's own dtype for the unscaled layers (unet_dtype, whose launch flags apply),
    the scaled_fp8 dtype or the quant config that makes BaseModel pick the matching comfy.ops.
    """
    mm = comfy.model_management
    load_device = mm.get_torch_device()
    model_config = CCLModelConfig(config, spec, shift)
    supported = model_config.supported_inference_dtypes
    cast_for = weight_dtype
    if quant is not None:
        route, detail = quant
        weight_dtype = mm.unet_dtype(model_params=params, supported_dtypes=supported, weight_dtype=None)
        if route == "scaled_fp8":
            model_config.scaled_fp8 = torch.float8_e4m3fn
            model_config.unet_config["ccl_fp8_layers"] = sorted(detail.scales)
            model_config.optimizations["fp8"] = detail.fp8_matmul
            cast_for = weight_dtype
        else:
            model_config.quant_config = detail
            cast_for = None  # ComfyUI: the compute dtype of a quantized model is chosen as for unknown weights
    model_config.set_inference_dtype(weight_dtype, mm.unet_manual_cast(cast_for, load_device, supported))
    offload = mm.unet_offload_device()
    model = model_config.get_model(device=offload)
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload)


def _mixed_precision_model(header: Header, scaled: ScaledFP8, config: ModelConfig, spec: LatentSpec, shift: float,
                           params: int):
    """ComfyUI 0.12+: the file converted by ComfyUI's own convert_old_quants (scale_weight -> per-layer
    quant configs) and loaded into mixed_precision_ops' layers through load_state_dict, as ComfyUI's
    loader does (its Linear layers build their quantized weight from the state dict)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in DualStreamModel(config).state_dict().items()}
    new_params = check_keys(model_view(header), expected, allow_missing=NEW_PARAMETERS)
    with open(header.path, "rb") as f:
        sd = {name: read_tensor(f, info) for name, info in header.tensors.items()}
    if SCALED_FP8_KEY not in sd:  # the marker convert_old_quants keys on (2 elements: no fp8 matmul)
        sd[SCALED_FP8_KEY] = torch.zeros(0 if scaled.fp8_matmul else 2, dtype=torch.float8_e4m3fn)
    sd, _ = comfy.utils.convert_old_quants(sd, "", metadata={})
    quant_config = comfy.utils.detect_layer_quantization(sd, "")
    patcher = create_model(config, spec, shift, None, ("mixed_precision", quant_config), params)
    sd.update(DualStreamModel.fresh_parameters(config, new_params, like=sd))
    missing, unexpected = patcher.model.diffusion_model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{header.path}: ComfyUI's scaled-fp8 conversion left keys the model does not take "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]}); load it with weight dtype bf16 "
                              "to dequantize it instead")
    return patcher


def model_from_file(header: Header, config: ModelConfig, spec: LatentSpec, shift: float,
                    weight_dtype: Optional[torch.dtype]) -> "comfy.model_patcher.ModelPatcher":
    """Build the native model and stream the checkpoint's tensors into it (one copy in memory).

    A scaled-fp8 file asked for in fp8 stays scaled fp8 the way this ComfyUI keeps such files
    (scaled_fp8_route); in any other dtype, or where ComfyUI has no such ops, it is dequantized.
    """
    scaled = scaled_fp8_info(header)
    route = scaled_fp8_route() if scaled is not None and weight_dtype == torch.float8_e4m3fn else "dequantize"
    params = sum(math.prod(t.shape) for t in model_view(header).tensors.values())
    if route == "mixed_precision":
        return _mixed_precision_model(header, scaled, config, spec, shift, params)
    if scaled is not None and route == "dequantize" and weight_dtype == torch.float8_e4m3fn:
        log.info("CCL: this ComfyUI has no scaled-fp8 ops; %s is dequantized to %s", header.path, scaled.base_dtype)
        weight_dtype = scaled.base_dtype
    quant = ("scaled_fp8", scaled) if route == "scaled_fp8" else None
    patcher = create_model(config, spec, shift, weight_dtype, quant, params)
    load_weights(patcher.model.diffusion_model, header)
    return patcher


def model_from_state(state: Dict[str, torch.Tensor], config: ModelConfig, spec: LatentSpec,
                     shift: float = 5.0, weight_dtype: Optional[torch.dtype] = None):
    """The same native model from an in-memory state dict (tests, scripts)."""
    if weight_dtype is None:
        weight_dtype = state[WEIGHT_DTYPE_KEY].dtype
    patcher = create_model(config, spec, shift, weight_dtype)
    patcher.model.diffusion_model.load_state_dict(state, strict=True)
    return patcher


def build_model(net: DualStreamModel, spec: LatentSpec, shift: float = 5.0):
    """The native model holding a copy of `net`'s weights (a ccl_core DualStreamModel)."""
    return model_from_state(net.state_dict(), net.config, spec, shift)
