"""One DCR training batch: draw tasks and dropouts, noise the streams that are generated.

Per sample (docs/TRAINING.md, "One step"): a task from the mix, null text with p_null_text, the ctx-only
route with p_ctx_only (independently), and one noise level t shared by the sample's noised
streams (as Ovi). Noised streams get x_t = (1 - t) x0 + t eps and the target eps - x0; clean
conditioning streams (a2v audio, v2a video) and clean prefixes (i2av's first latent frame, an
extension's overlap: a span of 1 to half the clip's latent frames, the audio of the same span) are
passed as their clean latent and the model runs them at t = 0. i2av's first frame is the batch's
"first_still" where it has one: the latent of the clip's first frame held still, which is what
sampling makes of an image (generate.image_latent); with a causal VAE (Wan's) that is the clip's own
first latent frame, so real-clip batches leave it out; absent streams are passed as they are (the model skips those rows) or as None when
no sample of the batch has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F

from ccl_core.routing import TASKS, Routes, make_routes, prefix_mask, sample_tasks

from .config import TrainConfig
from .data import Batch
from .timesteps import sample_timesteps


@dataclass
class FlowBatch:
    """Model inputs and flow-matching targets of one batch."""

    video: Optional[torch.Tensor]  # model input: x_t where noised, x0 where clean or absent
    audio: Optional[torch.Tensor]
    video_target: Optional[torch.Tensor]  # eps - x0 (meaningful on rows with routes.video_loss)
    audio_target: Optional[torch.Tensor]
    t: torch.Tensor  # [B]
    text: torch.Tensor  # [B, L, D], null text on dropped rows
    tasks: List[str]
    routes: Routes  # the DCR routes (losses and bookkeeping use these)


def prepare_batch(batch: Batch, cfg: TrainConfig, task_gen: torch.Generator,
                  noise_gen: torch.Generator) -> FlowBatch:
    """Draw tasks, dropouts and noise for a validated batch already on the training device.

    task_gen (CPU) draws tasks, dropouts and t; noise_gen (on the batch's device) draws eps.
    """
    text = batch["text"]
    size, device = text.shape[0], text.device
    draw = sample_tasks(size, task_gen, cfg.task_mix, cfg.p_null_text, cfg.p_ctx_only)
    t = sample_timesteps(size, cfg, task_gen).to(device)
    routes = make_routes(draw.tasks, size, draw.ctx_only, device, **draw_spans(draw.tasks, batch, task_gen))
    text = drop_text(text, batch["null_text"], draw.null_text.to(device))

    eps = {}
    for stream, present in (("video", routes.video_present), ("audio", routes.audio_present)):
        x0 = batch.get(stream)
        if x0 is not None and bool(present.any()):
            eps[stream] = torch.randn(x0.shape, generator=noise_gen, device=device, dtype=x0.dtype)
    return flow_batch(batch, routes, t, eps, text, draw.tasks)


def draw_spans(tasks: List[str], batch: Batch, gen: torch.Generator) -> dict:
    """Clean-span lengths of the "span" rows (extension): 1 to half the clip's latent video frames,
    and the audio latents inside that span (the batch's two streams cover the same time). No draw
    is made when no row needs one, so task mixes without extension keep their random streams."""
    rows = [i for i, t in enumerate(tasks) if TASKS[t].prefix == "span"]
    if not rows:
        return {}
    frames, latents = batch["video"].shape[2], batch["audio"].shape[2]
    video = torch.zeros(len(tasks), dtype=torch.long)
    video[rows] = torch.randint(1, max(frames // 2, 1) + 1, (len(rows),), generator=gen)
    audio = torch.where(video > 0, (video * latents) // frames, 0)
    return {"video_prefix": video, "audio_prefix": audio}


def flow_batch(batch: Batch, routes: Routes, t: torch.Tensor, eps: dict, text: torch.Tensor,
               tasks: List[str]) -> FlowBatch:
    """Noise the streams the routes generate with the given t [B] and eps (per stream present)."""
    inputs, targets = {}, {}
    for stream in ("video", "audio"):
        x0 = batch.get(stream)
        if stream == "video" and x0 is not None and batch.get("first_still") is not None:
            x0 = with_first_still(x0, batch["first_still"], tasks)
        if stream not in eps:
            inputs[stream] = targets[stream] = None
            continue
        noised = getattr(routes, f"{stream}_loss").view(-1, *[1] * (x0.ndim - 1))
        noised = noised & ~prefix_mask(getattr(routes, f"{stream}_prefix"), x0)
        tb = t.view(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)
        inputs[stream] = torch.where(noised, (1 - tb) * x0 + tb * eps[stream], x0)
        targets[stream] = eps[stream] - x0
    return FlowBatch(inputs["video"], inputs["audio"], targets["video"], targets["audio"], t, text, tasks, routes)


def with_first_still(video: torch.Tensor, first_still: torch.Tensor, tasks: List[str]) -> torch.Tensor:
    """video [B, Cv, T, H, W] with the first latent frame of the rows whose task holds a first frame
    (prefix "frame": i2av) replaced by first_still [B, Cv, 1, H, W], the image's latent sampling uses."""
    rows = torch.tensor([TASKS[t].prefix == "frame" for t in tasks], device=video.device)
    if not bool(rows.any()):
        return video
    if first_still.shape != (video.shape[0], video.shape[1], 1, *video.shape[3:]):
        raise ValueError(f"first_still must be [B, Cv, 1, H, W] = {[video.shape[0], video.shape[1], 1, *video.shape[3:]]} "
                         f"for video {list(video.shape)}, got {list(first_still.shape)}")
    first = torch.where(rows.view(-1, 1, 1, 1, 1), first_still.to(video.dtype), video[:, :, :1])
    return torch.cat([first, video[:, :, 1:]], dim=2)


def drop_text(text: torch.Tensor, null_text: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """Rows where drop is True get the null text; both are zero-padded to the longer length."""
    if not bool(drop.any()):
        return text
    length = max(text.shape[1], null_text.shape[1])
    text = F.pad(text, (0, 0, 0, length - text.shape[1]))
    null_text = F.pad(null_text, (0, 0, 0, length - null_text.shape[1])).to(text.dtype)
    return torch.where(drop.view(-1, 1, 1), null_text.expand_as(text), text)
