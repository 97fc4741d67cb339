"""The data contract of training: an iterable of batch dicts, optionally with a resumable state.

A batch is a dict of tensors:
    video      [B, Cv, T, H, W]  clean video latents      (may be left out if no task uses video)
    audio      [B, Ca, L]        clean audio latents      (may be left out if no task uses audio)
    text       [B, Lt, D]        text embeddings of the prompts
    null_text  [1 or B, Lt', D]  the empty-prompt embedding, used where text dropout fires

Any iterable works (a list, a generator, a DataLoader). For an exact resume the source also
provides `state_dict()` / `load_state_dict(state)`: the state it returns must make a fresh
`iter(source)` yield the first batch the trainer has not consumed yet (so a prefetching loader
reports the position of the consumer, not of its workers). The state is saved with
torch.save and read back with weights_only=True: keep it to tensors, numbers, strings, lists and
dicts. Under torchrun each rank gets its own source (its own shard or seed).
"""

from __future__ import annotations

from typing import Dict, Iterator, List

import torch

from ccl_core.routing import TASKS

from .config import TrainConfig

Batch = Dict[str, torch.Tensor]


def check_batch(batch: Batch, cfg: TrainConfig) -> int:
    """Validate one batch against the contract and the task mix; return the batch size."""
    if not isinstance(batch, dict):
        raise TypeError(f"a training batch must be a dict with video / audio / text / null_text tensors, "
                        f"got {type(batch).__name__}")
    for key in ("text", "null_text"):
        if key not in batch:
            raise KeyError(f"training batch has no {key!r} (keys: {sorted(batch)}); the data source must "
                           f"give text embeddings [B, Lt, D] and the null-prompt embedding [1 or B, Lt', D]")
    for stream in ("video", "audio"):
        if batch.get(stream) is None and cfg.needs(stream):
            users = sorted(t for t, w in cfg.task_mix.items() if w > 0 and getattr(TASKS[t], stream) != "absent")
            raise KeyError(f"training batch has no {stream!r} but the task mix uses it ({', '.join(users)}); "
                           f"give {stream} latents or train a mix without those tasks")
    if batch.get("video") is None and batch.get("audio") is None:
        raise KeyError("training batch has neither 'video' nor 'audio' latents")
    text, null = batch["text"], batch["null_text"]
    size = text.shape[0]
    if text.ndim != 3 or null.ndim != 3 or null.shape[2] != text.shape[2] or null.shape[0] not in (1, size):
        raise ValueError(f"text must be [B, Lt, D] and null_text [1 or B, Lt', D] with the same D; got text "
                         f"{list(text.shape)} and null_text {list(null.shape)}")
    for stream, ndim in (("video", 5), ("audio", 3)):
        x = batch.get(stream)
        if x is not None and (x.ndim != ndim or x.shape[0] != size):
            raise ValueError(f"{stream} must have {ndim} dims and batch {size} like text; got {list(x.shape)}")
    return size


class TensorBatches:
    """A fixed list of batches, cycled forever, with a resumable position (tests, overfitting)."""

    def __init__(self, batches: List[Batch]):
        if not batches:
            raise ValueError("TensorBatches needs at least one batch")
        self.batches = list(batches)
        self.position = 0

    def __iter__(self) -> Iterator[Batch]:
        while True:
            batch = self.batches[self.position % len(self.batches)]
            self.position += 1
            yield batch

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])
