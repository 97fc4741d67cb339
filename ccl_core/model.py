"""The dual-stream transformer: two towers run block by block, exchanging context every block.

Block i (Ovi's order): audio self-attention, video self-attention; audio reads
[text] and [ctx ; video]; video reads [text] and [ctx ; audio as it was before audio's
cross-attention]; each tower's FFN. Per-sample routes (routing.py) decide what each stream reads,
so one batch mixes tasks and guidance branches.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .attention import DEFAULT_ATTENTION, AttentionFn, CrossModalInput
from .config import ModelConfig
from .layers import TorchOps
from .routing import Routes, TaskArg, make_routes
from .tarp import Partition
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
            if name.endswith("ctx_tokens"):
                t = torch.randn(config.n_ctx, config.dim, generator=gen) * 0.02
            elif name.endswith("ctx_logit_bias"):
                t = torch.full((1,), float(config.ctx_logit_init))
            elif name.endswith("fusion_gate"):
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
            is_fusion = any(k in name for k in ("_fusion", "ctx_tokens", "ctx_logit_bias", "fusion_gate"))
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
        streams = {}
        for name, tower, x, t, present, txt in (
            ("video", self.video_model, video, t_video, routes.video_present, text),
            ("audio", self.audio_model, audio, t_audio, routes.audio_present, text if text_audio is None else text_audio),
        ):
            if x is None or not bool(present.any()):
                continue
            rows = None if bool(present.all()) else present.nonzero().squeeze(1)
            sel = (lambda v: v) if rows is None else (lambda v, rows=rows: v[rows])
            tokens, grid = tower.embed(sel(x).to(dtype))
            e, e0 = tower.embed_time(sel(t), dtype)
            prefix = sel(routes.video_prefix if name == "video" else routes.audio_prefix)
            clean = tower.prefix_mask(grid, prefix) if bool((prefix > 0).any()) else None
            streams[name] = dict(clean=clean, t0=None if clean is None else tower.embed_time(t.new_zeros(len(prefix)), dtype),
                tower=tower, rows=rows, sel=sel, x=tokens, grid=grid, e=e, e0=e0,
                text=tower.embed_text(sel(txt).to(dtype)), rope=tower.rotary(grid, device),
                pos=tower.positions(grid, device),
                skip=None if skip_block is None else sel(skip_rows).view(-1, 1, 1),
            )

        self._plan_cross_modal(streams, routes, batch, device)

        for i in range(cfg.num_layers):
            step = partial(self._block, streams=streams, skip=skip_block == i)
            xs = tuple(s["x"] for s in streams.values())
            if self.gradient_checkpointing and self.training:
                xs = checkpoint(step, i, *xs, use_reentrant=False)
            else:
                xs = step(i, *xs)
            for s, x in zip(streams.values(), xs):
                s["x"] = x

        outputs = []
        for name, x_in in (("video", video), ("audio", audio)):
            s = streams.get(name)
            if s is None:
                outputs.append(None if x_in is None else torch.zeros_like(x_in))
                continue
            e = s["e"] if s["clean"] is None else torch.where(s["clean"], s["t0"][0], s["e"])
            out = s["tower"].unpatchify(s["tower"].head(s["x"], e), s["grid"])
            if s["rows"] is not None:
                full = out.new_zeros((batch,) + tuple(out.shape[1:]))
                full[s["rows"]] = out
                out = full
            outputs.append(out)
        return outputs[0], outputs[1]

    # ------------------------------------------------------------------ internals
    def _plan_cross_modal(self, streams, routes: Routes, batch: int, device) -> None:
        """Per direction: which rows read the other stream, and the TARP partition (built once)."""
        cfg = self.config
        for name, other_name, reads in (("video", "audio", routes.video_reads_audio),
                                        ("audio", "video", routes.audio_reads_video)):
            s = streams.get(name)
            if s is None:
                continue
            o = streams.get(other_name)
            s["reads"] = None
            s["gather"] = None
            reads = s["sel"](reads)
            if o is None or not bool(reads.any()):
                s["cm"] = None if cfg.n_ctx == 0 else "ctx"
                continue
            s["cm"] = "full"
            s["other_rope"] = o["rope"]
            s["reads"] = None if bool(reads.all()) else reads
            if s["rows"] is not None or o["rows"] is not None:
                # rows of this stream -> rows of the other stream's (sub)batch; unmatched rows read
                # row 0 and are masked out by their route
                where = torch.zeros(batch, dtype=torch.long, device=device)
                o_rows = torch.arange(batch, device=device) if o["rows"] is None else o["rows"]
                where[o_rows] = torch.arange(o_rows.numel(), device=device)
                s["gather"] = s["sel"](where)
            s["partition"] = None
            if cfg.tarp_window is not None:
                s["partition"] = Partition.build(s["pos"], o["pos"], cfg.tarp_window)

    def _cross_input(self, s, other_x) -> Optional[CrossModalInput]:
        if s["cm"] is None:
            return None
        if s["cm"] == "ctx":
            return CrossModalInput(None, s["rope"], s["rope"], None)
        o = other_x if s["gather"] is None else other_x[s["gather"]]
        return CrossModalInput(o, s["rope"], s["other_rope"], s["reads"], s["partition"])

    def _block(self, i: int, *xs, streams, skip: bool):
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
    def _modulation(block, s):
        mods = block.modulation(s["e0"])
        if s["clean"] is None:
            return mods
        return PrefixModulation(mods, block.modulation(s["t0"][1]), s["clean"])

    def _block_compute(self, i: int, *xs, streams, skip: bool):
        names = list(streams)
        x = dict(zip(names, xs))
        blocks = {n: streams[n]["tower"].blocks[i] for n in names}
        mods = {n: self._modulation(blocks[n], streams[n]) for n in names}
        # 1. self-attention (audio first, as Ovi)
        h = {n: blocks[n].self_attention(x[n], mods[n], streams[n]["rope"]) for n in ("audio", "video") if n in x}
        # 2./3. audio reads video after video's self-attention; video reads audio from before step 2
        out = {}
        for n in ("audio", "video"):
            if n not in x:
                continue
            other = "video" if n == "audio" else "audio"
            cm = self._cross_input(streams[n], h.get(other))
            out[n] = blocks[n].cross_attention_ffn(h[n], mods[n], streams[n]["text"], cm)
        if skip:
            out = {n: torch.where(streams[n]["skip"], x[n], out[n]) for n in out}
        return tuple(out[n] for n in names)


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
        if not torch.is_tensor(video) or video.ndim != 5:
            raise ValueError(f"video latent must be [B, C={cfg.video_channels}, T, H, W], got shape "
                             f"{list(video.shape) if torch.is_tensor(video) else type(video).__name__}")
        if video.shape[1] != cfg.video_channels:
            raise ValueError(f"video latent has {video.shape[1]} channels, the model expects "
                             f"{cfg.video_channels} (shape [B, C, T, H, W], given {list(video.shape)})")
        pt, ph, pw = cfg.video_patch
        if video.shape[2] % pt or video.shape[3] % ph or video.shape[4] % pw:
            raise ValueError(f"video latent T, H, W {list(video.shape[2:])} must be multiples of the patch "
                             f"size {list(cfg.video_patch)}")
        if not torch.isfinite(video).all():
            raise ValueError("video latent contains NaN or inf values")
    if audio is not None:
        if not torch.is_tensor(audio) or audio.ndim != 3:
            raise ValueError(f"audio latent must be [B, C={cfg.audio_channels}, L], got shape "
                             f"{list(audio.shape) if torch.is_tensor(audio) else type(audio).__name__}")
        if audio.shape[1] != cfg.audio_channels:
            raise ValueError(f"audio latent has {audio.shape[1]} channels, the model expects "
                             f"{cfg.audio_channels} (shape [B, C, L], given {list(audio.shape)})")
        if not torch.isfinite(audio).all():
            raise ValueError("audio latent contains NaN or inf values")
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
