"""The dual-stream transformer: two towers run block by block, exchanging context every block.

Block i (Ovi's order): audio self-attention, video self-attention; audio reads
[text] and [ctx ; video]; video reads [text] and [ctx ; audio as it was before audio's
cross-attention]; each tower's FFN. Per-sample routes (routing.py) decide what each stream reads,
so one batch mixes tasks and guidance branches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from . import context
from .attention import DEFAULT_ATTENTION, FUSION_GATE, AttentionFn
from .config import ModelConfig
from .layers import TorchOps
from .rope import Rotary
from .routing import Routes, TaskArg, make_routes
from .self_windows import TimeWindows
from .tarp import CrossModalPlan, plan_cross_modal
from .tower import Tower

TimestepArg = Union[float, torch.Tensor, None]


def _per_sample(t: TimestepArg, batch: int, device, name: str) -> torch.Tensor:
    if t is None:
        raise ValueError(f"{name} is required")
    t = torch.as_tensor(t, dtype=torch.float32, device=device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape [{batch}] (one per sample), got {list(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf: {t.tolist()}")
    return t


class DualStreamModel(nn.Module):
    """Video and audio towers with cross-modal context attention (CCL) or Ovi / gated fusion.

    `operations` (layer types, layers.TorchOps by default) and `attention` (torch SDPA by default)
    are injectable, as ComfyUI's own models take them; `initialize=False` skips the weight init for a
    model whose weights are about to be loaded.
    """

    def __init__(self, config: ModelConfig, operations=TorchOps, attention: AttentionFn = DEFAULT_ATTENTION,
                 initialize: bool = True):
        super().__init__()
        self.config = config
        self.video_model = Tower(config, "video", operations, attention)
        self.audio_model = Tower(config, "audio", operations, attention)
        self.gradient_checkpointing = False
        self.compute_dtype: Optional[torch.dtype] = None  # None: weights' dtype (bf16 for fp8 weights)
        self.block_swap = None  # offload.BlockSwap moves blocks to the device one at a time
        # Called with the block index before each block pair runs: a host's interrupt check lands
        # within one block's time instead of one whole step's.
        self.before_block: Optional[Callable[[int], None]] = None
        if initialize:
            self.init_weights()

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def init_weights(self) -> None:
        """Wan's init (Xavier linears, zero head) plus Ovi's /10 on the video tower's fusion linears;
        with config.zero_init_fusion the fusion values start at zero."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for tower in (self.video_model, self.audio_model):
            if tower.modality == "video":
                nn.init.xavier_uniform_(tower.patch_embedding.weight.flatten(1))
            for seq in (tower.text_embedding, tower.time_embedding):
                for m in seq.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(tower.head.head.weight)
        for block in self.video_model.blocks:
            block.cross_attn.k_fusion.weight.div_(10.0)
            block.cross_attn.v_fusion.weight.div_(10.0)
        if self.config.zero_init_fusion:
            for block in (*self.video_model.blocks, *self.audio_model.blocks):
                nn.init.zeros_(block.cross_attn.v_fusion.weight)
                nn.init.zeros_(block.cross_attn.v_fusion.bias)

    @staticmethod
    def fresh_parameters(config: ModelConfig, names, like=None, seed: int = 0):
        """Initial values for CCL parameters a pretrained checkpoint lacks (context tokens, gates)."""
        ref = None if like is None else like.get("video_model.head.head.weight")
        dtype = ref.dtype if ref is not None and ref.dtype in (torch.float32, torch.float16, torch.bfloat16) \
            else torch.bfloat16 if ref is not None else torch.float32
        gen = torch.Generator().manual_seed(seed)
        out = {}
        for name in names:
            if context.is_context_parameter(name):
                t = context.initial_value(name, config.n_ctx, config.dim, config.ctx_logit_init, gen)
            elif name.endswith(FUSION_GATE):
                t = torch.zeros(1)
            else:
                raise KeyError(f"no initialiser for new parameter {name}")
            out[name] = t.to(dtype)
        return out

    # ------------------------------------------------------------------ helpers
    @property
    def dtype_for_compute(self) -> torch.dtype:
        if self.compute_dtype is not None:
            return self.compute_dtype
        w = self.video_model.head.head.weight
        return w.dtype if w.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64) else torch.bfloat16

    @property
    def device(self) -> torch.device:
        return self.video_model.head.head.weight.device

    def param_groups(self):
        """(cross-modal parameters, the rest): the fusion is new when fine-tuning a pretrained pair."""
        fusion, rest = [], []
        for name, p in self.named_parameters():
            is_fusion = "_fusion" in name or name.endswith(FUSION_GATE) or context.is_context_parameter(name)
            (fusion if is_fusion else rest).append(p)
        return fusion, rest

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        video: Optional[torch.Tensor] = None,
        audio: Optional[torch.Tensor] = None,
        t_video: TimestepArg = None,
        t_audio: TimestepArg = None,
        text: Optional[torch.Tensor] = None,
        tasks: TaskArg = None,
        ctx_only=None,
        skip_block: Optional[int] = None,
        skip_rows: Optional[torch.Tensor] = None,
        text_audio: Optional[torch.Tensor] = None,
        video_prefix=None,
        audio_prefix=None,
    ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Velocities of both streams.

        video [B, Cv, T, H, W] and audio [B, Ca, L] are the noisy latents (None when the stream is
        absent for the whole batch); t_video / t_audio are noise levels in [0, 1] per sample (t_audio
        defaults to t_video); text [B, Lt, text_dim]; tasks: one name, one per sample, or Routes
        (default t2av); ctx_only [B] forces the ctx-only route (UCG's unconditional branches);
        skip_block / skip_rows: skip that fusion block for those rows (Ovi's skip-layer guidance).
        text_audio: a separate text for the audio tower (Ovi's API allows one); defaults to text.
        video_prefix / audio_prefix: the clean span of an "extend" task (routing.make_routes).
        Clean conditioning streams (a2v, v2a) run at timestep 0 whatever t says, and so do the tokens
        of a clean prefix (i2av's first latent frame, an extension's overlap): the caller passes
        their clean latent there, and the prediction on them is not meaningful. Rows whose stream
        is absent get zeros in that stream's output; a stream absent for all rows is not computed.
        """
        cfg = self.config
        batch = _check_latents(cfg, video, audio)
        device = (video if video is not None else audio).device
        routes = make_routes(tasks, batch, ctx_only, device, video_prefix, audio_prefix)
        _check_routes(cfg, routes, video, audio)
        _check_text(cfg, text, batch)
        if text_audio is not None:
            _check_text(cfg, text_audio, batch)
        t_video = _per_sample(t_video if t_video is not None else t_audio, batch, device, "t_video")
        t_audio = _per_sample(t_audio if t_audio is not None else t_video, batch, device, "t_audio")
        t_video = torch.where(routes.video_clean, torch.zeros_like(t_video), t_video)
        t_audio = torch.where(routes.audio_clean, torch.zeros_like(t_audio), t_audio)
        if skip_block is not None:
            if not 0 <= skip_block < cfg.num_layers:
                raise ValueError(f"skip_block must be in [0, {cfg.num_layers}), got {skip_block}")
            skip_rows = torch.ones(batch, dtype=torch.bool, device=device) if skip_rows is None \
                else torch.as_tensor(skip_rows, dtype=torch.bool, device=device).expand(batch)

        dtype = self.dtype_for_compute
        streams, xs = {}, []
        for name, tower, x, t, present, prefix, txt in (
            ("video", self.video_model, video, t_video, routes.video_present, routes.video_prefix, text),
            ("audio", self.audio_model, audio, t_audio, routes.audio_present, routes.audio_prefix,
             text if text_audio is None else text_audio),
        ):
            if x is None or not bool(present.any()):
                continue
            rows = None if bool(present.all()) else present.nonzero().squeeze(1)
            streams[name], tokens = Stream.embed(tower, rows, x, t, prefix, txt, dtype, device,
                                                 None if skip_block is None else skip_rows)
            xs.append(tokens)
        for name, reads in (("video", routes.video_reads_audio), ("audio", routes.audio_reads_video)):
            if name in streams:
                plan = plan_cross_modal(reads, streams[name], streams.get(OTHER[name]), cfg.n_ctx, cfg.tarp_window)
                streams[name] = replace(streams[name], cross=plan)

        xs = tuple(xs)
        for i in range(cfg.num_layers):
            step = partial(self._block, streams=streams, skip=skip_block == i)
            if self.gradient_checkpointing and self.training:
                xs = checkpoint(step, i, *xs, use_reentrant=False)
            else:
                xs = step(i, *xs)

        out = dict(zip(streams, xs))
        return tuple(streams[name].output(out[name], batch) if name in streams
                     else None if x_in is None else torch.zeros_like(x_in)
                     for name, x_in in (("video", video), ("audio", audio)))

    # ------------------------------------------------------------------ internals
    def _block(self, i: int, *xs, streams: Dict[str, "Stream"], skip: bool):
        """Block pair i (the seam the block swapper and FSDP wrap); xs are the streams' tokens."""
        if self.before_block is not None:
            self.before_block(i)
        if self.block_swap is None:
            return self._block_compute(i, *xs, streams=streams, skip=skip)
        self.block_swap.enter(i)
        try:
            return self._block_compute(i, *xs, streams=streams, skip=skip)
        finally:
            self.block_swap.exit(i)

    @staticmethod
    def _block_compute(i: int, *xs, streams: Dict[str, "Stream"], skip: bool):
        """Ovi's block order: audio self-attention, then video's; audio reads video as it is after
        video's self-attention and video reads audio as it was before audio's cross-attention (both
        read the self-attention outputs); then each tower's FFN. Skipped rows keep their input."""
        x = dict(zip(streams, xs))
        blocks = {n: s.tower.blocks[i] for n, s in streams.items()}
        mods = {n: s.modulation(blocks[n]) for n, s in streams.items()}
        h = {n: blocks[n].self_attention(x[n], mods[n], streams[n].rope, streams[n].windows) for n in ORDER if n in x}
        out = {}
        for n in ORDER:
            if n in x:
                s = streams[n]
                cm = s.cross.input(s.rope, h.get(OTHER[n]))
                out[n] = blocks[n].cross_attention_ffn(h[n], mods[n], s.text, cm)
        if skip:
            out = {n: torch.where(streams[n].skip, x[n], out[n]) for n in out}
        return tuple(out[n] for n in streams)


ORDER = ("audio", "video")  # Ovi's order within a block
OTHER = {"video": "audio", "audio": "video"}


@dataclass(frozen=True)
class Stream:
    """One tower's inputs to every block, fixed for a whole forward pass. The tokens themselves go
    through the blocks as a plain tuple (what gradient checkpointing and FSDP's seam take)."""

    tower: Tower
    rows: Optional[torch.Tensor]  # batch rows where this stream exists; None: every row
    grid: tuple  # video (T', H', W'), audio (L,)
    e: torch.Tensor  # time embedding [b, 1, dim] (the head's)
    e0: torch.Tensor  # its six-way projection [b, 1, 6, dim] (the blocks')
    text: torch.Tensor  # embedded text [b, text_len, dim]
    rope: Rotary
    pos: torch.Tensor  # [L] time position of each token, in latent video frames (TARP)
    windows: Optional[TimeWindows]  # self-attention windows of a clip longer than self_attn_window; None: full
    clean: Optional[torch.Tensor]  # [b, L, 1] tokens of a clean prefix, run at t = 0; None: none
    clean_e: Optional[torch.Tensor]  # e and e0 at t = 0 (None without a clean prefix)
    clean_e0: Optional[torch.Tensor]
    skip: Optional[torch.Tensor]  # [b, 1, 1] rows whose skipped block keeps its input; None: no skip
    cross: CrossModalPlan = CrossModalPlan("none")  # set once both streams exist (tarp.plan_cross_modal)

    @classmethod
    def embed(cls, tower: Tower, rows, x, t, prefix, text, dtype, device, skip_rows=None
              ) -> Tuple["Stream", torch.Tensor]:
        """The stream of batch rows `rows` (None: all) and its tokens [b, L, dim], from the whole
        batch's latent x, noise level t, clean prefix, text and skip_rows (None: no skipped block)."""
        select = partial(_select, rows=rows)
        tokens, grid = tower.embed(select(x).to(dtype))
        e, e0 = tower.embed_time(select(t), dtype)
        prefix = select(prefix)
        clean = tower.prefix_mask(grid, prefix) if bool((prefix > 0).any()) else None
        clean_e, clean_e0 = (None, None) if clean is None else tower.embed_time(t.new_zeros(len(prefix)), dtype)
        stream = cls(tower, rows, grid, e, e0, tower.embed_text(select(text).to(dtype)), tower.rotary(grid, device),
                     tower.positions(grid, device), tower.self_windows(grid), clean, clean_e, clean_e0,
                     None if skip_rows is None else select(skip_rows).view(-1, 1, 1))
        return stream, tokens

    def select(self, value: torch.Tensor) -> torch.Tensor:
        """This stream's rows of a per-batch tensor."""
        return _select(value, self.rows)

    def modulation(self, block):
        """The block's six modulation tensors, per token where a clean prefix runs at t = 0."""
        mods = block.modulation(self.e0)
        return mods if self.clean is None else PrefixModulation(mods, block.modulation(self.clean_e0), self.clean)

    def output(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        """Head and unpatchify; rows where the stream is absent get zeros."""
        e = self.e if self.clean is None else torch.where(self.clean, self.clean_e, self.e)
        out = self.tower.unpatchify(self.tower.head(x, e), self.grid)
        if self.rows is None:
            return out
        full = out.new_zeros((batch,) + tuple(out.shape[1:]))
        full[self.rows] = out
        return full


def _select(value: torch.Tensor, rows: Optional[torch.Tensor]) -> torch.Tensor:
    return value if rows is None else value[rows]


class PrefixModulation:
    """A block's six modulation tensors when some tokens are clean (timestep 0): each is selected per
    token when the block reads it, so no [B, L, 6, dim] table is kept (Ovi keeps one)."""

    def __init__(self, noised, clean, mask: torch.Tensor):
        self.noised, self.clean, self.mask = noised, clean, mask

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.where(self.mask, self.clean[i], self.noised[i])


# ---------------------------------------------------------------------- input checks
def _check_latents(cfg: ModelConfig, video, audio) -> int:
    if video is None and audio is None:
        raise ValueError("Both video and audio are None: pass at least one latent")
    if video is not None:
        _check_latent("video", video, "T, H, W", cfg.video_channels, cfg.video_patch)
    if audio is not None:
        _check_latent("audio", audio, "L", cfg.audio_channels)
    if video is not None and audio is not None:
        if video.shape[0] != audio.shape[0]:
            raise ValueError(f"video batch {video.shape[0]} != audio batch {audio.shape[0]}")
        dv = video.shape[2] / cfg.video_latent_fps
        da = audio.shape[2] / cfg.audio_latent_rate
        if abs(dv - da) > 1.0 / cfg.video_latent_fps + 1.0 / cfg.audio_latent_rate:
            frames = round(da * cfg.video_latent_fps)
            raise ValueError(
                f"video and audio latents cover different durations: {video.shape[2]} video latent frames "
                f"= {dv:.3f} s at {cfg.video_latent_fps} latent fps, {audio.shape[2]} audio latents = "
                f"{da:.3f} s at {cfg.audio_latent_rate} latents/s; for this audio use about {frames} video "
                f"latent frames, or about {round(dv * cfg.audio_latent_rate)} audio latents for this video")
    return (video if video is not None else audio).shape[0]


def _check_latent(name: str, x, axes: str, channels: int, patch=None) -> None:
    """One stream's latent: [B, C, *axes] with the model's channels, axes multiples of the patch, finite."""
    if not torch.is_tensor(x) or x.ndim != 2 + len(axes.split(", ")):
        raise ValueError(f"{name} latent must be [B, C={channels}, {axes}], got shape "
                         f"{list(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    if x.shape[1] != channels:
        raise ValueError(f"{name} latent has {x.shape[1]} channels, the model expects "
                         f"{channels} (shape [B, C, {axes}], given {list(x.shape)})")
    if patch is not None and any(n % p for n, p in zip(x.shape[2:], patch)):
        raise ValueError(f"{name} latent {axes} {list(x.shape[2:])} must be multiples of the patch "
                         f"size {list(patch)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} latent contains NaN or inf values")


def _check_routes(cfg: ModelConfig, routes: Routes, video, audio) -> None:
    if video is None and bool(routes.video_present.any()):
        raise ValueError("a task needs the video stream (t2av, t2v, a2v or v2a) but video is None; "
                         "pass a video latent or use task 't2a'")
    if audio is None and bool(routes.audio_present.any()):
        raise ValueError("a task needs the audio stream (t2av, t2a, a2v or v2a) but audio is None; "
                         "pass an audio latent or use task 't2v'")
    if bool((routes.video_reads_audio & ~routes.audio_present).any()) or \
            bool((routes.audio_reads_video & ~routes.video_present).any()):
        raise ValueError("a route reads a stream that is absent for that sample")
    for name, x, prefix, unit in (("video", video, routes.video_prefix, "latent frames"),
                                  ("audio", audio, routes.audio_prefix, "latents")):
        if not bool((prefix > 0).any()):
            continue
        length = x.shape[2]
        if bool((prefix >= length).any()):
            raise ValueError(f"a clean {name} prefix of {int(prefix.max())} {unit} leaves nothing to generate in "
                             f"a {name} latent of {length}; make the window longer or the overlap shorter")
        if name == "video" and bool((prefix % cfg.video_patch[0] != 0).any()):
            raise ValueError(f"a clean video prefix must be a multiple of the temporal patch {cfg.video_patch[0]} "
                             f"latent frames, got {prefix.tolist()}")


def _check_text(cfg: ModelConfig, text, batch: int) -> None:
    if text is None:
        raise ValueError(f"text embeddings are required: [B, tokens <= {cfg.text_len}, {cfg.text_dim}]")
    if not torch.is_tensor(text) or text.ndim != 3:
        raise ValueError(f"text must be [B, tokens, {cfg.text_dim}], got "
                         f"{list(text.shape) if torch.is_tensor(text) else type(text).__name__}")
    if text.shape[0] != batch:
        raise ValueError(f"text batch {text.shape[0]} != latent batch {batch}")
    if text.shape[2] != cfg.text_dim:
        raise ValueError(f"text embeddings are {text.shape[2]} wide, the model expects {cfg.text_dim} "
                         f"(shape [B, tokens, {cfg.text_dim}], given {list(text.shape)}); wrong text encoder?")
    if text.shape[1] > cfg.text_len:
        raise ValueError(f"text has {text.shape[1]} tokens, the model takes at most {cfg.text_len}")
    if not torch.isfinite(text).all():
        raise ValueError("text embeddings contain NaN or inf values")
