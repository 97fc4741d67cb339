"""The data contract of training: an iterable of batch dicts, optionally with a resumable state.

A batch is a dict of tensors:
    video      [B, Cv, T, H, W]  clean video latents      (may be left out if no task uses video)
    audio      [B, Ca, L]        clean audio latents      (may be left out if no task uses audio)
    text       [B, Lt, D]        text embeddings of the prompts
    null_text  [1 or B, Lt', D]  the empty-prompt embedding, used where text dropout fires
    first_still [B, Cv, 1, H, W] optional: the latent of each clip's first frame held still, i2av's
                                 clean first frame (what sampling makes of an image); leave it out
                                 where that is the clip's first latent frame (a causal VAE, Wan's)

Any iterable works (a list, a generator, a DataLoader). For an exact resume the source also
provides `state_dict()` / `load_state_dict(state)`: the state it returns must make a fresh
`iter(source)` yield the first batch the trainer has not consumed yet (so a prefetching loader
reports the position of the consumer, not of its workers). The state is saved with
torch.save and read back with weights_only=True: keep it to tensors, numbers, strings, lists and
dicts. Under torchrun each rank gets its own source (its own shard or seed).

Sources kept here: TensorBatches (a fixed list), LatentBatches (an encoded dataset, shuffled per
epoch) and DurationBatches (datasets of several clip durations, one duration per batch).
"""

from __future__ import annotations

import math
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
    still, video = batch.get("first_still"), batch.get("video")
    if still is not None and (video is None or still.shape != (size, video.shape[1], 1, *video.shape[3:])):
        want = "no video to go with it" if video is None else f"[{size}, {video.shape[1]}, 1, " \
            f"{', '.join(map(str, video.shape[3:]))}]"
        raise ValueError(f"first_still must be one still latent frame per clip, {want}; got {list(still.shape)}")
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


class LatentBatches:
    """Endless shuffled batches over an encoded dataset, resumable (state_dict / load_state_dict)."""

    def __init__(self, data: Dict[str, torch.Tensor], null_text: torch.Tensor, batch_size: int, seed: int = 0):
        n = data["text"].shape[0]
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n} clips)")
        self.data, self.null_text, self.batch_size, self.seed = data, null_text, batch_size, seed
        self.epoch, self.position = 0, 0

    def _order(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.data["text"].shape[0], generator=g)

    def __iter__(self) -> Iterator[dict]:
        order = self._order()
        while True:
            if self.position + self.batch_size > order.numel():
                self.epoch, self.position = self.epoch + 1, 0
                order = self._order()
            idx = order[self.position:self.position + self.batch_size]
            self.position += self.batch_size
            batch = {k: v[idx] for k, v in self.data.items()}
            batch["null_text"] = self.null_text
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"epoch", "position"}:
            raise ValueError(f"this data state ({sorted(state)}) is not one dataset's: the run was started with "
                             "clips of several durations (DurationBatches); resume it with the same durations")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class DurationBatches:
    """Endless batches over datasets of several clip durations, resumable (state_dict / load_state_dict).

    Every batch comes from one dataset (shapes match inside a batch); which one is drawn per batch
    with probability proportional to its weight, from a generator seeded by (seed, batch index), so
    a resumed source draws what an uninterrupted one would. Each dataset is its own LatentBatches
    (seed + its index in `datasets`): its clips are shuffled per epoch of that dataset.
    """

    def __init__(self, datasets: Dict[float, Dict[str, torch.Tensor]], weights: Dict[float, float],
                 null_text: torch.Tensor, batch_size: int, seed: int = 0):
        if not datasets or set(datasets) != set(weights):
            raise ValueError(f"one weight per dataset: datasets of {sorted(datasets)} s, weights for "
                             f"{sorted(weights)} s")
        bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"duration weights must be finite and > 0, got {bad}")
        self.durations = list(datasets)
        self.sources = []
        for i, seconds in enumerate(self.durations):
            try:
                self.sources.append(LatentBatches(datasets[seconds], null_text, batch_size, seed=seed + i))
            except ValueError as e:
                raise ValueError(f"the {seconds:g} s clips: {e}") from None
        self.weights = torch.tensor([float(weights[k]) for k in self.durations], dtype=torch.float64)
        self.seed, self.draws = seed, 0

    def duration_index(self, n: int) -> int:
        """The dataset of batch n (0-based), the same in every run of this seed."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + n)
        return int(torch.multinomial(self.weights, 1, generator=g))

    def __iter__(self) -> Iterator[dict]:
        streams = [iter(source) for source in self.sources]
        while True:
            k = self.duration_index(self.draws)
            batch = next(streams[k])
            self.draws += 1
            yield batch

    def state_dict(self) -> dict:
        return {"durations": [float(d) for d in self.durations], "draws": self.draws,
                "sources": [source.state_dict() for source in self.sources]}

    def load_state_dict(self, state: dict) -> None:
        mine = [float(d) for d in self.durations]
        if "durations" not in state or [float(d) for d in state["durations"]] != mine:
            was = f"{state['durations']} s" if "durations" in state else "one dataset only (LatentBatches)"
            raise ValueError(f"this run was started with clips of {was}, not {mine} s; resume it with the same "
                             "durations, or start a new run directory")
        for source, sub in zip(self.sources, state["sources"]):
            source.load_state_dict(sub)
        self.draws = int(state["draws"])
