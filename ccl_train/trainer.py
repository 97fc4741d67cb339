"""The DCR training step, and the state that makes a run resumable bit for bit.

`Trainer.step(batch)` is one optimizer step: draw tasks / dropouts / noise (dcr.py), run the
model once on the mixed batch, take the flow-matching loss of the routed streams (losses.py),
clip, step AdamW with the scheduled learning rates, update the EMA. `save` / `load` write and
read everything that step depends on: weights, EMA, optimizer, step, this rank's generators and
the global random states (plus whatever the caller adds, e.g. the data position).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

import torch
from safetensors.torch import load_file

from ccl_core.checkpoint import save_checkpoint

from . import distributed, rng
from .config import TrainConfig
from .data import Batch, check_batch
from .dcr import prepare_batch
from .ema import EMA
from .losses import flow_loss
from .optim import freeze, make_optimizer, set_lr

MODEL_FILE, EMA_FILE, TRAINER_FILE = "model.safetensors", "ema.safetensors", "trainer.pt"


def rank_file(rank: int) -> str:
    return f"rank-{rank:05d}.pt"


@dataclass
class StepResult:
    step: int  # optimizer steps done, this one included
    loss: float  # weighted total over all ranks
    streams: Dict[str, Optional[float]]  # per-stream loss over all ranks (None: no routed row)
    table: torch.Tensor  # [tasks + "all", streams, (loss sum, rows)] over all ranks (losses.TASK_ORDER)
    tasks: List[str]  # this rank's task draw
    lr: Dict[str, float]  # "fusion", "towers"
    grad_norm: float  # before clipping


class Trainer:
    """One model, its optimizer and EMA, and the random draws of DCR training on this rank."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, device: Union[str, torch.device, None] = None,
                 info: Optional[distributed.DistInfo] = None):
        """info: from distributed.setup (train() passes it); None joins torchrun's group itself."""
        self.cfg = cfg
        self.elapsed = 0.0  # seconds this run directory has trained, over all sittings (train() keeps it)
        self.info = info if info is not None else distributed.setup(device)
        self.device = self.info.device
        self.model = model.to(self.device)
        self.model.train()
        self.model.gradient_checkpointing = cfg.gradient_checkpointing
        self.trainable = freeze(self.model, cfg)
        self.module = distributed.wrap(self.model, self.info)  # broadcasts rank 0's weights
        self._start_state()

    def _start_state(self) -> None:
        """EMA, optimizer and this rank's random streams for self.model (its trainable set chosen)."""
        cfg = self.cfg
        self.ema = None if cfg.ema_decay is None else EMA(self.model, self.trainable, cfg.ema_decay, cfg.ema_warmup)
        self.optimizer = make_optimizer(self.model, cfg)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        seed = cfg.seed + self.info.rank
        self.task_gen = torch.Generator().manual_seed(seed)
        self.noise_gen = torch.Generator(self.device).manual_seed(seed + (1 << 32))
        self.step_count = 0

    # ------------------------------------------------------------------ training
    def autocast(self):
        if self.device.type == "cuda" and self.cfg.mixed_precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, batch: Batch) -> StepResult:
        """One optimizer step on one batch (a dict as data.py describes)."""
        check_batch(batch, self.cfg)
        batch = {k: batch[k].to(self.device, torch.float32, non_blocking=True)
                 for k in ("video", "audio", "text", "null_text", "first_still") if batch.get(k) is not None}
        fb = prepare_batch(batch, self.cfg, self.task_gen, self.noise_gen)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            pred_video, pred_audio = self.module(fb.video, fb.audio, fb.t, fb.t, fb.text, tasks=fb.routes)
        loss = flow_loss(pred_video, pred_audio, fb, self.cfg)
        loss.total.backward()
        grad_norm = self.clip_gradients()
        lr = set_lr(self.optimizer, self.step_count, self.cfg)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step_count += 1

        table = distributed.all_reduce_sum(loss.table, self.info).cpu()
        streams = {}
        for s, stream in enumerate(("video", "audio")):
            total, rows = table[-1, s].tolist()
            streams[stream] = total / rows if rows else None
        weights = {"video": self.cfg.video_loss_weight, "audio": self.cfg.audio_loss_weight}
        joint = sum(weights[k] * v for k, v in streams.items() if v is not None)
        return StepResult(self.step_count, joint, streams, table, fb.tasks, lr, grad_norm)

    def clip_gradients(self) -> float:
        """Clip the global gradient norm to cfg.grad_clip; return the norm before clipping."""
        limit = self.cfg.grad_clip if self.cfg.grad_clip is not None else float("inf")
        return float(torch.nn.utils.clip_grad_norm_(self.params, limit))

    @contextlib.contextmanager
    def ema_weights(self):
        """Sample or evaluate with the averaged weights (the model itself when the EMA is off)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with (self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext(self.model)) as m:
                yield m
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: Union[str, os.PathLike], extra: Optional[dict] = None) -> None:
        """Write this rank's share of a checkpoint into an existing directory.

        Rank 0 writes the weights (model.safetensors, ema.safetensors: both loadable with
        checkpoint.load_checkpoint, use ema.safetensors for sampling) and trainer.pt (optimizer,
        step); every rank writes rank-NNNNN.pt (its generators, the global random states, `extra`).
        """
        directory = os.fspath(directory)
        meta = {"step": self.step_count, "stage": self.cfg.stage}
        if self.info.is_main:
            save_checkpoint(self.model, os.path.join(directory, MODEL_FILE), metadata=meta)
            if self.ema is not None:
                with self.ema.applied(self.model):
                    save_checkpoint(self.model, os.path.join(directory, EMA_FILE), metadata={**meta, "ema": 1})
            torch.save({"step": self.step_count, "optimizer": self.optimizer.state_dict(),
                        "ema": None if self.ema is None else self.ema.state_dict(),
                        "world_size": self.info.world_size, "config": self.cfg.to_dict()},
                       os.path.join(directory, TRAINER_FILE))
        torch.save({"task_gen": self.task_gen.get_state(), "noise_gen": self.noise_gen.get_state(),
                    "rng": rng.capture(), "extra": extra or {}},
                   os.path.join(directory, rank_file(self.info.rank)))

    def load(self, directory: Union[str, os.PathLike]) -> dict:
        """Restore everything `save` wrote (every rank reads the shared files); return `extra`."""
        directory = os.fspath(directory)
        state = torch.load(os.path.join(directory, TRAINER_FILE), map_location="cpu", weights_only=True)
        if "model_config" in state:
            raise ValueError(f"{directory} is a sharded checkpoint of a parallel='fsdp' run: resume it with "
                             f"parallel='fsdp' (--set parallel=fsdp)")
        if state["world_size"] != self.info.world_size:
            raise RuntimeError(f"{directory} was saved by {state['world_size']} ranks, this run has "
                               f"{self.info.world_size}: resume with the same number of processes")
        self.model.load_state_dict(load_file(os.path.join(directory, MODEL_FILE), device=str(self.device)))
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as e:
            raise ValueError(f"the optimizer state in {directory} does not fit this run's trainable parameters "
                             f"({e}); resume with the TrainConfig.train and learning rates it was saved with") from None
        if (self.ema is None) != (state["ema"] is None):
            raise ValueError(f"{directory} was saved with ema_decay {'None' if state['ema'] is None else 'set'}; "
                             f"resume with the same ema setting")
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"], load_file(os.path.join(directory, EMA_FILE), device=str(self.device)))
        self.step_count = int(state["step"])
        mine = torch.load(os.path.join(directory, rank_file(self.info.rank)), map_location="cpu", weights_only=True)
        self.task_gen.set_state(mine["task_gen"])
        self.noise_gen.set_state(mine["noise_gen"])
        rng.restore(mine["rng"])
        return mine["extra"]
