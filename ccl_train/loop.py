"""train(): a whole stage in a run directory, resumable, on one process or under torchrun."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from typing import Callable, Iterable, Optional, Union

import torch

from . import distributed, logs, rng, rundir
from .config import TrainConfig
from .trainer import StepResult, Trainer


def train(model: torch.nn.Module, data: Iterable, cfg: TrainConfig, run_dir: Union[str, os.PathLike],
          device: Union[str, torch.device, None] = None, resume: bool = False,
          callback: Optional[Callable[[Trainer, StepResult], None]] = None) -> Trainer:
    """Train `model` on `data` (data.py's contract) for cfg.steps optimizer steps; return the Trainer.

    Writes run_dir as rundir.py describes: the loss log every cfg.log_every steps, a checkpoint
    every cfg.save_every steps and at the end. resume=True continues from the newest checkpoint
    (bit-identical to an uninterrupted run when the data source has state_dict / load_state_dict);
    without it an existing, non-empty run_dir is refused. Under torchrun every rank calls train()
    with its own data source. callback(trainer, result) runs after every step on every rank; use
    `with trainer.ema_weights():` in it to sample or evaluate. trainer.elapsed: seconds of training
    in run_dir over all sittings (a resumed run counts its earlier ones).
    """
    run_dir = os.fspath(run_dir)
    info = distributed.setup(device)
    log = None
    try:
        checkpoint = rundir.open_run(run_dir, resume, info)
        if info.is_main:
            _write_config(run_dir, cfg)
        rng.seed_all(cfg.seed + info.rank)
        if cfg.parallel == "fsdp":
            from .fsdp import FSDPTrainer
            trainer = FSDPTrainer(model, cfg, info=info)
        else:
            trainer = Trainer(model, cfg, info=info)
        stateful = callable(getattr(data, "state_dict", None)) and callable(getattr(data, "load_state_dict", None))
        if not stateful and info.is_main:
            warnings.warn(f"the data source ({type(data).__name__}) has no state_dict / load_state_dict: a "
                          f"resumed run restarts its data from the beginning and is not exact", stacklevel=2)
        extra = trainer.load(checkpoint) if checkpoint else {}
        if stateful and extra.get("data") is not None:
            data.load_state_dict(extra["data"])
        if info.is_main:
            logs.truncate(os.path.join(run_dir, rundir.LOG), trainer.step_count)
            log = logs.LossLog(os.path.join(run_dir, rundir.LOG), cfg.log_smoothing, cfg.log_every)
            if extra.get("log") is not None:
                log.load_state_dict(extra["log"])
        elapsed0, start = float(extra.get("elapsed", 0.0)), time.monotonic()
        trainer.elapsed = elapsed0

        batches = _forever(data)
        while trainer.step_count < cfg.steps:
            result = trainer.step(next(batches))
            elapsed = trainer.elapsed = elapsed0 + time.monotonic() - start
            if log is not None:
                log.record(result, elapsed)
            if callback is not None:
                callback(trainer, result)
            if result.step % cfg.save_every == 0 or result.step == cfg.steps:
                state = {"data": data.state_dict() if stateful else None,
                         "log": log.state_dict() if log is not None else None, "elapsed": elapsed}
                rundir.save(run_dir, result.step, lambda d: trainer.save(d, state), info, cfg.keep_checkpoints)
        return trainer
    finally:
        if log is not None:
            log.close()
        distributed.teardown(info)


def _forever(data: Iterable):
    """Batches of `data`, starting a new pass when one ends (an epoch), erroring if one is empty."""
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError(f"the data source ({type(data).__name__}) yielded no batch; a one-shot generator "
                             f"cannot start a second pass: give an iterable (iter() restarts it) or an endless one")


def _write_config(run_dir: str, cfg: TrainConfig) -> None:
    """Record the config; warn when a resumed run changes more than its length or bookkeeping."""
    path = os.path.join(run_dir, rundir.CONFIG)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        free = {"steps", "log_every", "save_every", "keep_checkpoints"}
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # a field newer than the file
        changed = sorted(k for k, v in cfg.to_dict().items()
                         if k not in free and old.get(k, defaults.get(k)) != v)
        if changed:
            warnings.warn(f"resuming {run_dir} with changed settings {changed}: the continuation differs from "
                          f"the original run", stacklevel=3)
    with open(path + ".tmp", "w") as f:
        f.write(cfg.to_json())
    os.replace(path + ".tmp", path)
