"""Flow-matching loss per routed stream, and the per-task bookkeeping that goes with it.

Each stream's loss is the mean squared velocity error over the rows whose route says its loss
counts (routes.video_loss / audio_loss), so clean conditioning streams and absent streams never
contribute, and a stream's loss does not shrink when few of the batch's rows train it. Positions
of a clean prefix (i2av, extension) are left out of their row's mean. The total
is the weighted sum of the streams present. Per (task, stream) sums and counts are kept as one
tensor so that ranks can add them up with a single all_reduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch

from ccl_core.routing import TASKS, prefix_mask

from .config import TrainConfig
from .dcr import FlowBatch

TASK_ORDER = tuple(sorted(TASKS))  # rows of FlowLoss.table; one more row "all" for the streams
STREAMS = ("video", "audio")


@dataclass
class FlowLoss:
    total: torch.Tensor  # scalar to backpropagate
    streams: Dict[str, Optional[torch.Tensor]]  # per-stream mean over routed rows (None: no rows)
    table: torch.Tensor  # [len(TASK_ORDER) + 1, 2 streams, (sum of row losses, row count)], detached


def flow_loss(pred_video: Optional[torch.Tensor], pred_audio: Optional[torch.Tensor], fb: FlowBatch,
              cfg: TrainConfig) -> FlowLoss:
    """Weighted sum over streams of the mean squared error on the rows each stream trains."""
    device = fb.t.device
    table = torch.zeros(len(TASK_ORDER) + 1, len(STREAMS), 2, dtype=torch.float64, device=device)
    one_hot = torch.tensor([[t == name for name in TASK_ORDER] for t in fb.tasks], dtype=torch.float64,
                           device=device)
    weights = {"video": cfg.video_loss_weight, "audio": cfg.audio_loss_weight}
    total, streams = None, {}
    for s, (stream, pred, target) in enumerate((("video", pred_video, fb.video_target),
                                                ("audio", pred_audio, fb.audio_target))):
        rows = getattr(fb.routes, f"{stream}_loss")
        if pred is None or target is None or not bool(rows.any()):
            streams[stream] = None
            continue
        err = (pred.float() - target.float()).square()
        prefix = getattr(fb.routes, f"{stream}_prefix")
        if bool((prefix > 0).any()):
            keep = (~prefix_mask(prefix, err)).expand_as(err).flatten(1).float()
            per_row = (err.flatten(1) * keep).sum(1) / keep.sum(1).clamp_min(1)
        else:
            per_row = err.flatten(1).mean(1)
        loss = per_row[rows].mean()
        streams[stream] = loss
        total = weights[stream] * loss if total is None else total + weights[stream] * loss
        kept = torch.stack([torch.where(rows, per_row.detach(), 0).double(), rows.double()], 1)  # [B, 2]
        table[:-1, s] = one_hot.T @ kept  # a matmul, not index_add_: deterministic on CUDA
        table[-1, s] = kept.sum(0)
    if total is None:
        raise ValueError("no row of this batch has a loss: every task noises at least one stream, so the "
                         "routes or the batch's streams are inconsistent")
    return FlowLoss(total, streams, table)
