"""Validation loss per DCR task, with the same noise levels and noise for every task and model.

The training loss is drawn afresh each step, so two runs' curves differ by their draws as well as
by their models. Here every task sees the same clips with the same t and eps (a fixed seed), and
only the route changes: the t2a audio loss against the v2a audio loss is then exactly how much the
audio stream gains from seeing the clean video, and two models compare on identical inputs.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional

import torch

from ccl_core.routing import make_routes

from .config import TrainConfig
from .dcr import flow_batch
from .losses import STREAMS, flow_loss
from .timesteps import sample_timesteps

TASKS = ("t2v", "t2a", "t2av", "v2a", "a2v")


@torch.no_grad()
def validation_losses(model: torch.nn.Module, data: Dict[str, torch.Tensor], cfg: TrainConfig,
                      tasks: Iterable[str] = TASKS, batch_size: int = 64, seed: int = 0,
                      device: Optional[torch.device] = None) -> Dict[str, Dict[str, float]]:
    """Mean flow-matching loss of each task's generated streams: {task: {stream: loss}}.

    data: "video" [N, ...], "audio" [N, ...] and "text" [N, L, D] latents of the whole set. cfg
    supplies the noise-level distribution; there is no text or route dropout, and each task is
    run on every clip.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    n = data["text"].shape[0]
    gen = torch.Generator().manual_seed(seed)  # one t and one noise per clip and stream, for every task
    t_all = sample_timesteps(n, cfg, gen)
    eps_all = {s: torch.randn(data[s].shape, generator=gen) for s in STREAMS}
    was_training = model.training
    model.eval()
    out = {}
    try:
        for task in tasks:
            sums = torch.zeros(len(STREAMS), 2, dtype=torch.float64)
            for start in range(0, n, batch_size):
                rows = slice(start, start + batch_size)
                batch = {k: data[k][rows].to(device, torch.float32) for k in ("video", "audio")}
                size = batch["video"].shape[0]
                routes = make_routes(task, size, device=device)
                eps = {s: eps_all[s][rows].to(device) for s, present in
                       (("video", routes.video_present), ("audio", routes.audio_present)) if bool(present.any())}
                text = data["text"][rows].to(device, torch.float32)
                fb = flow_batch(batch, routes, t_all[rows].to(device), eps, text, [task] * size)
                pred_video, pred_audio = model(fb.video, fb.audio, fb.t, fb.t, fb.text, tasks=fb.routes)
                sums += flow_loss(pred_video, pred_audio, fb, cfg).table[-1].cpu()
            out[task] = {stream: float(sums[s, 0] / sums[s, 1]) for s, stream in enumerate(STREAMS) if sums[s, 1]}
    finally:
        model.train(was_training)
    return out
