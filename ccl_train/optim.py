"""Which parameters learn, at which learning rate: AdamW with separate cross-modal / tower groups.

The cross-modal parameters (model.param_groups()[0]) are new when CCL is trained on a pretrained
pair, so they get their own (larger) learning rate; the towers get a smaller one or are frozen.
Frozen parameters get requires_grad=False (no gradient memory, no optimizer state). Weight
decay applies to matrices only: norms, biases, logit offsets and context tokens are not decayed.
The schedule is a pure function of the step, so resuming needs nothing but the step.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, List

import torch

from ccl_core.context import TOKENS
from .config import TrainConfig


def param_sets(model) -> Dict[str, List[str]]:
    """Parameter names of each trainable set: "video", "audio" (whole towers), "fusion"."""
    fusion_ids = {id(p) for p in model.param_groups()[0]}
    sets = {"video": [], "audio": [], "fusion": []}
    for name, p in model.named_parameters():
        tower = name.split(".", 1)[0].removesuffix("_model")
        if tower not in sets:
            raise ValueError(f"parameter {name} belongs to neither tower (video_model.*, audio_model.*)")
        sets[tower].append(name)
        if id(p) in fusion_ids:
            sets["fusion"].append(name)
    return sets


def freeze(model, cfg: TrainConfig) -> List[str]:
    """Set requires_grad from cfg.train (and lr 0 = frozen); return the names that train."""
    sets = param_sets(model)
    fusion = set(sets["fusion"])
    chosen = set().union(*(sets[s] for s in cfg.train))
    trainable, low = [], False
    for name, p in model.named_parameters():
        lr = cfg.lr_fusion if name in fusion else cfg.lr_towers
        p.requires_grad_(name in chosen and lr > 0)
        if p.requires_grad:
            if not p.dtype.is_floating_point or p.dtype.itemsize < 2:
                raise ValueError(f"parameter {name} is stored as {p.dtype} and cannot be trained; load the "
                                 f"checkpoint with dtype='fp32' (load_checkpoint(path, dtype='fp32'))")
            trainable.append(name)
            low = low or p.dtype in (torch.bfloat16, torch.float16)
    if low:
        warnings.warn("some trainable parameters are 16-bit: AdamW updates smaller than their precision are "
                      "lost; keep fp32 master weights (load_checkpoint(path, dtype='fp32')) and let "
                      "mixed_precision='bf16' handle the compute", stacklevel=2)
    if not trainable:
        raise ValueError(f"nothing to train: train={cfg.train}, lr_fusion={cfg.lr_fusion}, "
                         f"lr_towers={cfg.lr_towers}; name a parameter set with a non-zero learning rate")
    return trainable


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, grouped by (cross-modal or tower) x (decayed or not)."""
    fusion = {id(p) for p in model.param_groups()[0]}
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        kind = "fusion" if id(p) in fusion else "towers"
        decay = p.ndim >= 2 and not name.endswith(TOKENS)
        key = (kind, decay)
        if key not in groups:
            groups[key] = {"params": [], "name": f"{kind}{'' if decay else '_no_decay'}", "kind": kind,
                           "base_lr": getattr(cfg, f"lr_{kind}"), "weight_decay": cfg.weight_decay if decay else 0.0}
        groups[key]["params"].append(p)
    for g in groups.values():
        g["lr"] = g["base_lr"] * lr_factor(0, cfg)
    return torch.optim.AdamW(list(groups.values()), betas=cfg.betas, eps=cfg.adam_eps)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rates at optimizer step `step` (0-based)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "wsd":  # the stable part is the constant run's, so a constant run can be cooled down
        into_decay = step - (cfg.steps - cfg.decay_steps)
        return 1.0 - (1 - cfg.min_lr_ratio) * min(1.0, max(0, into_decay) / cfg.decay_steps)
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, step: int, cfg: TrainConfig) -> Dict[str, float]:
    """Apply the schedule for `step`; return the learning rate of each kind ("fusion", "towers")."""
    factor = lr_factor(step, cfg)
    lrs = {"fusion": 0.0, "towers": 0.0}
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor
        lrs[g["kind"]] = g["lr"]
    return lrs
