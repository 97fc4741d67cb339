"""Data parallel training across processes (torchrun): process group, device, gradient sync.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `setup` reads them and
joins the group with gloo on CPU or nccl on CUDA (rank r uses cuda:LOCAL_RANK). Replicas stay
identical because DDP broadcasts rank 0's weights when it wraps the model and averages the
gradients of every step; ranks differ only in their data and in their draws of tasks and noise
(seed + rank). Routing makes the set of used parameters vary from step to step and from rank to
rank (a t2v-only batch never touches the audio tower), hence find_unused_parameters=True.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when setup() created the process group (and should destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: Union[str, torch.device, None] = None) -> DistInfo:
    """Join the process group torchrun describes (if any) and pick this rank's device."""
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return DistInfo(device=device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ or "RANK" not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but RANK / MASTER_ADDR are not set: launch with torchrun "
                               f"(torchrun --nproc-per-node {world} -m ccl_train ...)")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), device, owns)


def wrap(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """The module to call in training: DDP around the model when there are several ranks."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def all_reduce_sum(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def teardown(info: Optional[DistInfo]) -> None:
    if info is not None and info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
