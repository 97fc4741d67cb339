"""The training config: one serialisable dataclass per stage of the recipe.

A stage (the paper's recipe; docs/TRAINING.md, "Staged recipe") is a task mix, the parameter sets that train,
their learning rates and a step count. `stage_config` gives the presets; any field can be changed.
The config is written to the run directory as JSON so that a run can be read back and resumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from ccl_core.jsonconfig import JsonConfig
from ccl_core.routing import DEFAULT_TASK_MIX, TASKS

TIMESTEP_DISTS = ("logit_normal", "uniform")
SCHEDULES = ("constant", "cosine", "wsd")
PARAM_SETS = ("video", "audio", "fusion")  # video_model.*, audio_model.*, model.param_groups()[0]
PRECISIONS = ("bf16", "no")
PARALLEL = ("ddp", "fsdp")
FSDP_DTYPES = ("bf16", "fp32")


@dataclass
class TrainConfig(JsonConfig):
    _json_indent = 2  # train_config.json is read by people
    stage: str = "joint"  # a label written to logs and checkpoints
    steps: int = 1000  # total optimizer steps of this stage (a resumed run continues up to it)
    seed: int = 0  # rank r draws tasks and noise from seed + r; the model init is the caller's

    # DCR (docs/TRAINING.md, "One step"): task mix, text dropout, route dropout.
    task_mix: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TASK_MIX))
    p_null_text: float = 0.1
    p_ctx_only: float = 0.1

    # Noise level per sample, shared by the sample's noised streams: logit-normal (SD3) or uniform,
    # then optionally shifted like the sampler, t' = s t / (1 + (s - 1) t).
    timestep_dist: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    timestep_shift: float = 1.0

    video_loss_weight: float = 1.0
    audio_loss_weight: float = 1.0

    # Optimisation. `train` names the parameter sets that learn; the rest is frozen.
    train: Tuple[str, ...] = ("video", "audio", "fusion")
    lr_fusion: float = 1e-4  # cross-modal parameters (new when fine-tuning a pretrained pair)
    lr_towers: float = 1e-5  # everything else (the pretrained towers)
    weight_decay: float = 0.01  # matrices only; norms, biases, context tokens are not decayed
    betas: Tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    warmup_steps: int = 100  # linear warmup from lr / warmup_steps
    # After warmup: "constant"; "cosine" down towards min_lr_ratio * lr at step `steps`; "wsd" (warmup-
    # stable-decay) constant, then linear towards min_lr_ratio * lr over the last decay_steps steps.
    schedule: str = "constant"
    min_lr_ratio: float = 0.0
    decay_steps: int = 0  # "wsd" only
    grad_clip: Optional[float] = 1.0  # max global grad norm; None disables clipping

    ema_decay: Optional[float] = 0.999  # None disables the EMA
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) after n updates

    mixed_precision: str = "bf16"  # autocast on CUDA; CPU always runs in the weights' dtype (DDP path)
    gradient_checkpointing: bool = False

    # "ddp": every rank holds the whole model (small models); "fsdp": FSDP2, parameters, gradients and
    # optimizer states sharded over the ranks (fsdp.py; the Ovi-sized pair). FSDP keeps fp32 master
    # weights and computes in fsdp_param_dtype, reducing gradients in fsdp_reduce_dtype.
    parallel: str = "ddp"
    fsdp_param_dtype: str = "bf16"
    fsdp_reduce_dtype: str = "fp32"

    log_every: int = 1
    log_smoothing: float = 0.98  # EMA factor of the `smoothed` column of the loss log
    save_every: int = 500
    keep_checkpoints: int = 2  # newest checkpoints kept in run_dir/checkpoints; 0 keeps all

    def __post_init__(self):
        self.train = tuple(self.train)
        self.betas = tuple(float(b) for b in self.betas)
        self.task_mix = {str(k): float(v) for k, v in self.task_mix.items()}
        self.validate()

    def validate(self) -> None:
        problems = []
        unknown = sorted(set(self.task_mix) - set(TASKS))
        if unknown:
            problems.append(f"task_mix has unknown tasks {unknown}; known: {sorted(TASKS)}")
        if any(v < 0 or not math.isfinite(v) for v in self.task_mix.values()) or sum(self.task_mix.values()) <= 0:
            problems.append(f"task_mix needs non-negative weights with a positive sum, got {self.task_mix}")
        for name in ("p_null_text", "p_ctx_only"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.timestep_dist not in TIMESTEP_DISTS:
            problems.append(f"timestep_dist must be one of {TIMESTEP_DISTS}, got {self.timestep_dist!r}")
        if self.logit_std <= 0 or self.timestep_shift <= 0:
            problems.append("logit_std and timestep_shift must be > 0")
        bad_sets = sorted(set(self.train) - set(PARAM_SETS))
        if bad_sets or not self.train:
            problems.append(f"train must name one or more of {PARAM_SETS}, got {self.train}")
        if min(self.lr_fusion, self.lr_towers, self.weight_decay) < 0:
            problems.append("lr_fusion, lr_towers and weight_decay must be >= 0")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "wsd" and not 0 < self.decay_steps <= self.steps - self.warmup_steps:
            problems.append(f"schedule 'wsd' needs 0 < decay_steps <= steps - warmup_steps "
                            f"({self.steps} - {self.warmup_steps}), got decay_steps={self.decay_steps}")
        if self.schedule != "wsd" and self.decay_steps:
            problems.append(f"decay_steps={self.decay_steps} is only used by schedule 'wsd', not {self.schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.mixed_precision not in PRECISIONS:
            problems.append(f"mixed_precision must be one of {PRECISIONS}, got {self.mixed_precision!r}")
        if self.parallel not in PARALLEL:
            problems.append(f"parallel must be one of {PARALLEL}, got {self.parallel!r}")
        for name in ("fsdp_param_dtype", "fsdp_reduce_dtype"):
            if getattr(self, name) not in FSDP_DTYPES:
                problems.append(f"{name} must be one of {FSDP_DTYPES}, got {getattr(self, name)!r}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay must be in [0, 1) or None, got {self.ema_decay}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            problems.append(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        for name in ("steps", "log_every", "save_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.keep_checkpoints < 0:
            problems.append("warmup_steps and keep_checkpoints must be >= 0")
        if not 0.0 <= self.log_smoothing < 1.0:
            problems.append(f"log_smoothing must be in [0, 1), got {self.log_smoothing}")
        if problems:
            raise ValueError("Invalid TrainConfig: " + "; ".join(problems))

    def needs(self, stream: str) -> bool:
        """Whether a task with non-zero weight uses this stream ("video" or "audio")."""
        return any(w > 0 and getattr(TASKS[t], stream) != "absent" for t, w in self.task_mix.items())


# The paper's staged recipe: each tower alone on its unimodal task, then the joint mix with CCL.
STAGES: Dict[str, dict] = {
    "video": dict(task_mix={"t2v": 1.0}, train=("video",), lr_fusion=1e-4, lr_towers=1e-4),
    "audio": dict(task_mix={"t2a": 1.0}, train=("audio",), lr_fusion=1e-4, lr_towers=1e-4),
    "joint": dict(task_mix=dict(DEFAULT_TASK_MIX), train=PARAM_SETS, lr_fusion=1e-4, lr_towers=1e-5),
    # CCL on top of a pretrained pair (e.g. Ovi) with the towers frozen.
    "fusion": dict(task_mix=dict(DEFAULT_TASK_MIX), train=("fusion",), lr_fusion=1e-4, lr_towers=0.0),
}


def stage_config(stage: str, **overrides) -> TrainConfig:
    """The preset of one stage ("video", "audio", "joint", "fusion") with fields overridden."""
    if stage not in STAGES:
        raise ValueError(f"Unknown stage {stage!r}; expected one of {sorted(STAGES)}")
    return TrainConfig(**{"stage": stage, **STAGES[stage], **overrides})
