"""Dynamic context routing (DCR): what each sample's task means for the two streams.

A task decides, per sample, which streams exist, which are noised or clean, what each stream's
cross-modal attention may read ("full" = [context tokens ; other stream], "ctx" = context tokens
only) and which stream's loss counts. Routes are per-sample boolean vectors, so one batch can mix
tasks: the model turns them into attention masks, never into separate runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Union

import torch


@dataclass(frozen=True)
class TaskSpec:
    video: str  # "noised" | "clean" | "absent"
    audio: str
    video_reads: str  # "full" | "ctx" | "-"
    audio_reads: str


# DESIGN.md section 2, the DCR table.
TASKS: Dict[str, TaskSpec] = {
    "t2av": TaskSpec("noised", "noised", "full", "full"),
    "t2v": TaskSpec("noised", "absent", "ctx", "-"),
    "t2a": TaskSpec("absent", "noised", "-", "ctx"),
    "a2v": TaskSpec("noised", "clean", "full", "ctx"),
    "v2a": TaskSpec("clean", "noised", "ctx", "full"),
}

DEFAULT_TASK_MIX: Dict[str, float] = {"t2av": 0.6, "a2v": 0.15, "v2a": 0.15, "t2v": 0.05, "t2a": 0.05}


def check_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown task {name!r}; expected one of {sorted(TASKS)}") from None


@dataclass
class Routes:
    """Per-sample routing, each field a bool tensor [B]."""

    video_present: torch.Tensor
    audio_present: torch.Tensor
    video_clean: torch.Tensor  # held at its clean latent, timestep 0
    audio_clean: torch.Tensor
    video_reads_audio: torch.Tensor  # True: [ctx ; audio]; False: [ctx] only
    audio_reads_video: torch.Tensor
    video_loss: torch.Tensor
    audio_loss: torch.Tensor

    @property
    def batch(self) -> int:
        return self.video_present.shape[0]

    def to(self, device) -> "Routes":
        return Routes(**{k: v.to(device) for k, v in self.__dict__.items()})

    def select(self, rows: torch.Tensor) -> "Routes":
        return Routes(**{k: v[rows] for k, v in self.__dict__.items()})

    @staticmethod
    def cat(parts: Sequence["Routes"]) -> "Routes":
        keys = parts[0].__dict__.keys()
        return Routes(**{k: torch.cat([getattr(p, k) for p in parts]) for k in keys})


TaskArg = Union[str, Sequence[str], Routes, None]


def make_routes(tasks: TaskArg, batch: int, ctx_only=None, device=None) -> Routes:
    """Routes for a batch from task names (one name for all, or one per sample).

    ctx_only (bool or [B] bools) forces both directions to read the context tokens only: the
    route-dropout of training and the unconditional branches of UCG.
    """
    if isinstance(tasks, Routes):
        routes = tasks
        if routes.batch != batch:
            raise ValueError(f"routes cover {routes.batch} samples but the batch has {batch}")
    else:
        names = ["t2av"] * batch if tasks is None else [tasks] * batch if isinstance(tasks, str) else list(tasks)
        if len(names) != batch:
            raise ValueError(f"tasks has {len(names)} entries but the batch has {batch} samples")
        specs = [check_task(n) for n in names]

        def col(fn):
            return torch.tensor([fn(s) for s in specs], dtype=torch.bool)

        routes = Routes(
            video_present=col(lambda s: s.video != "absent"),
            audio_present=col(lambda s: s.audio != "absent"),
            video_clean=col(lambda s: s.video == "clean"),
            audio_clean=col(lambda s: s.audio == "clean"),
            video_reads_audio=col(lambda s: s.video_reads == "full"),
            audio_reads_video=col(lambda s: s.audio_reads == "full"),
            video_loss=col(lambda s: s.video == "noised"),
            audio_loss=col(lambda s: s.audio == "noised"),
        )
    if ctx_only is not None:
        force = torch.as_tensor(ctx_only, dtype=torch.bool).expand(batch).to(routes.video_present.device)
        routes = Routes(**{**routes.__dict__,
                           "video_reads_audio": routes.video_reads_audio & ~force,
                           "audio_reads_video": routes.audio_reads_video & ~force})
    return routes.to(device) if device is not None else routes


@dataclass
class TaskDraw:
    tasks: list
    null_text: torch.Tensor  # [B] bool: replace the text by the null text
    ctx_only: torch.Tensor  # [B] bool: force the ctx-only route


def sample_tasks(batch: int, generator: Optional[torch.Generator] = None,
                 mix: Optional[Dict[str, float]] = None, p_null_text: float = 0.1,
                 p_ctx_only: float = 0.1) -> TaskDraw:
    """Draw a task per sample from the mix, plus independent text and route dropout (DCR)."""
    mix = dict(DEFAULT_TASK_MIX if mix is None else mix)
    for name in mix:
        check_task(name)
    names = list(mix)
    probs = torch.tensor([mix[n] for n in names], dtype=torch.float64)
    if (probs < 0).any() or probs.sum() <= 0:
        raise ValueError(f"task mix must have non-negative weights with a positive sum, got {mix}")
    idx = torch.multinomial(probs / probs.sum(), batch, replacement=True, generator=generator)
    null_text = torch.rand(batch, generator=generator) < p_null_text
    ctx_only = torch.rand(batch, generator=generator) < p_ctx_only
    return TaskDraw([names[i] for i in idx.tolist()], null_text, ctx_only)
