"""Dynamic context routing (DCR): what each sample's task means for the two streams.

A task decides, per sample, which streams exist, which are noised or clean, what each stream's
cross-modal attention may read ("full" = [context tokens ; other stream], "ctx" = context tokens
only), which leading part of the streams is held clean, and which stream's loss counts. Routes are
per-sample vectors, so one batch can mix tasks: the model turns them into attention masks and
per-token timesteps, never into separate runs.
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
    # A clean prefix inside a noised stream, run at timestep 0 and held at its given latent:
    # "frame": the first latent video frame (image-to-audio-video, as Ovi's first_frame_is_clean);
    # "span": the leading latents of both streams over one time span (extending a clip: the
    # previous window's tail), its length given per call; "-": none.
    prefix: str = "-"


# The DCR task table (docs/DESIGN-NOTES.md, "DCR"): one row per task.
TASKS: Dict[str, TaskSpec] = {
    "t2av": TaskSpec("noised", "noised", "full", "full"),
    "t2v": TaskSpec("noised", "absent", "ctx", "-"),
    "t2a": TaskSpec("absent", "noised", "-", "ctx"),
    "a2v": TaskSpec("noised", "clean", "full", "ctx"),
    "v2a": TaskSpec("clean", "noised", "ctx", "full"),
    "i2av": TaskSpec("noised", "noised", "full", "full", prefix="frame"),
    "extend": TaskSpec("noised", "noised", "full", "full", prefix="span"),
}

DEFAULT_TASK_MIX: Dict[str, float] = {"t2av": 0.6, "a2v": 0.15, "v2a": 0.15, "t2v": 0.05, "t2a": 0.05}


def check_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown task {name!r}; expected one of {sorted(TASKS)}") from None


def task_index(name: str) -> int:
    """A task's number, its row in TASKS: how a batch carries tasks as a tensor (ComfyUI's conds)."""
    check_task(name)
    return list(TASKS).index(name)


def task_names(indices: Sequence[int]) -> list:
    """The task names of task_index numbers."""
    names = list(TASKS)
    return [names[int(i)] for i in indices]


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
    video_prefix: torch.Tensor  # long [B]: leading latent video frames held clean (timestep 0)
    audio_prefix: torch.Tensor  # long [B]: leading audio latents held clean

    @property
    def has_prefix(self) -> bool:
        return bool((self.video_prefix > 0).any()) or bool((self.audio_prefix > 0).any())

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


def _counts(value, batch: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(0 if value is None else value, dtype=torch.long).flatten()
    if t.numel() == 1:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"{name} must be one count or one per sample ({batch}), got {list(t.shape)}")
    if bool((t < 0).any()):
        raise ValueError(f"{name} must be >= 0, got {t.tolist()}")
    return t.clone()


def make_routes(tasks: TaskArg, batch: int, ctx_only=None, device=None, video_prefix=None,
                audio_prefix=None) -> Routes:
    """Routes for a batch from task names (one name for all, or one per sample).

    ctx_only (bool or [B] bools) forces both directions to read the context tokens only: the
    route-dropout of training and the unconditional branches of UCG. video_prefix / audio_prefix
    (a count, or one per sample) are the clean prefix lengths of "span" tasks (extension), in
    latent video frames and audio latents; a "frame" task (i2av) has one clean latent video frame.
    """
    if isinstance(tasks, Routes):
        routes = tasks
        if routes.batch != batch:
            raise ValueError(f"routes cover {routes.batch} samples but the batch has {batch}")
        if video_prefix is not None or audio_prefix is not None:
            raise ValueError("pass clean prefix lengths to make_routes with task names, not with ready Routes")
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
            **_prefixes(names, specs, batch, video_prefix, audio_prefix),
        )
    if ctx_only is not None:
        force = torch.as_tensor(ctx_only, dtype=torch.bool).expand(batch).to(routes.video_present.device)
        routes = Routes(**{**routes.__dict__,
                           "video_reads_audio": routes.video_reads_audio & ~force,
                           "audio_reads_video": routes.audio_reads_video & ~force})
    return routes.to(device) if device is not None else routes


def _prefixes(names, specs, batch: int, video_prefix, audio_prefix) -> Dict[str, torch.Tensor]:
    """Per-sample clean prefix lengths: one video frame for "frame" tasks, the given span for "span"
    tasks, none for the rest (a prefix given for a task without one is an error, not ignored)."""
    video = _counts(video_prefix, batch, "video_prefix")
    audio = _counts(audio_prefix, batch, "audio_prefix")
    for i, (name, spec) in enumerate(zip(names, specs)):
        if spec.prefix == "frame":
            if video_prefix is not None and int(video[i]) not in (0, 1) or audio_prefix is not None and int(audio[i]):
                raise ValueError(f"task {name!r} holds exactly the first latent video frame; do not pass prefix lengths")
            video[i], audio[i] = 1, 0
        elif spec.prefix == "span":
            if int(video[i]) == 0 and int(audio[i]) == 0:
                raise ValueError(f"task {name!r} needs the clean span's length: video_prefix (latent frames) and "
                                 "audio_prefix (audio latents), e.g. the overlap with the previous window")
        elif int(video[i]) or int(audio[i]):
            raise ValueError(f"task {name!r} has no clean prefix, got video_prefix={int(video[i])}, "
                             f"audio_prefix={int(audio[i])}; use 'i2av' or 'extend'")
    return {"video_prefix": video, "audio_prefix": audio}


def prefix_mask(prefix: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """Bool mask broadcastable to a latent ([B, C, T, H, W] or [B, C, L]): True on each sample's
    first prefix[b] entries along time (dim 2), the positions held at their clean values."""
    prefix = torch.as_tensor(prefix, device=latent.device).view(-1, 1)
    mask = torch.arange(latent.shape[2], device=latent.device).view(1, -1) < prefix
    return mask.view(mask.shape[0], 1, latent.shape[2], *([1] * (latent.ndim - 3)))


def span_prefix(video_frames, video_latent_fps: float, audio_latent_rate: float):
    """The audio latents that lie inside the first `video_frames` latent video frames' time span
    (rounded down, so that no held audio latent reaches past the held video)."""
    frames = torch.as_tensor(video_frames, dtype=torch.float64)
    return torch.floor(frames / video_latent_fps * audio_latent_rate + 1e-9).long()


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
