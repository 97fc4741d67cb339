"""The run directory: its layout, the refusal to reuse one by accident, and atomic checkpoints.

    run_dir/train_config.json            the TrainConfig of the latest (re)start
    run_dir/losses.csv                   the loss log (logs.py)
    run_dir/checkpoints/step-00000500/   model.safetensors, ema.safetensors, trainer.pt, rank-*.pt

A checkpoint is written under a .tmp name by all ranks, then renamed by rank 0, so a crash mid-save
never leaves a checkpoint that looks complete. With several ranks run_dir must be on a filesystem
all ranks share.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Callable, List, Optional, Tuple

from . import distributed

CONFIG, LOG, CHECKPOINTS = "train_config.json", "losses.csv", "checkpoints"
_STEP = re.compile(r"^step-(\d{8})$")


def checkpoints(run_dir: str) -> List[Tuple[int, str]]:
    """Complete checkpoints of a run, oldest first, as (step, path)."""
    root = os.path.join(run_dir, CHECKPOINTS)
    if not os.path.isdir(root):
        return []
    found = [(int(m.group(1)), os.path.join(root, name)) for name in os.listdir(root) if (m := _STEP.match(name))]
    return sorted(found)


def open_run(run_dir: str, resume: bool, info: distributed.DistInfo) -> Optional[str]:
    """Make run_dir ready; return the checkpoint to resume from (None: start at step 0).

    A directory that already has files is used only with resume=True, and only if it is a run
    directory; resume=True on an empty or missing directory starts a new run (so one command can
    start a job and restart it after preemption).
    """
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise NotADirectoryError(f"run_dir {run_dir} is a file; choose a directory for the run")
    used = False
    if os.path.isdir(run_dir):
        with os.scandir(run_dir) as entries:
            used = any(entries)
    if used and not resume:
        raise FileExistsError(f"run_dir {run_dir} already has files (a previous run?); pass resume=True "
                              f"(--resume) to continue it, or choose a new run_dir")
    if used and not os.path.exists(os.path.join(run_dir, CONFIG)):
        raise FileExistsError(f"run_dir {run_dir} has files but no {CONFIG}, so it is not a training run; "
                              f"choose a new or empty run_dir")
    found = checkpoints(run_dir)
    distributed.barrier(info)  # every rank has looked before rank 0 creates anything
    if info.is_main:
        os.makedirs(os.path.join(run_dir, CHECKPOINTS), exist_ok=True)
    distributed.barrier(info)
    return found[-1][1] if found else None


def save(run_dir: str, step: int, write: Callable[[str], None], info: distributed.DistInfo, keep: int) -> str:
    """Let every rank write(tmp_dir), then publish it as checkpoints/step-NNNNNNNN; keep the newest `keep`."""
    final = os.path.join(run_dir, CHECKPOINTS, f"step-{step:08d}")
    tmp = final + ".tmp"
    if info.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    distributed.barrier(info)
    write(tmp)
    distributed.barrier(info)
    if info.is_main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        old = checkpoints(run_dir)
        for _, path in old[:-keep] if keep else []:
            shutil.rmtree(path)
    distributed.barrier(info)
    return final
