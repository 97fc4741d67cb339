"""Block swap: keep the fusion blocks in CPU memory and bring each one to the GPU only while it runs.

For GPUs smaller than the model (Ovi bf16 is 23 GB). The embeddings, heads and the first `resident`
block pairs stay on the device; every other block pair (video block i + audio block i) is copied in
from pinned CPU memory right before it runs and dropped right after, while the copy of the next pair
is already under way on a side stream. Inference only: the CPU copies are the weights of record.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn as nn


class BlockSwap:
    def __init__(self, model: nn.Module, device, resident: int = 0, pin_memory: Optional[bool] = None,
                 prefetch: bool = True):
        self.model = model
        self.device = torch.device(device)
        n = model.config.num_layers
        if not 0 <= resident <= n:
            raise ValueError(f"resident must be between 0 and {n} blocks, got {resident}")
        self.resident = set(range(resident))
        cuda = self.device.type == "cuda"
        pin = cuda if pin_memory is None else pin_memory
        self.pairs: List[List[nn.Module]] = [[model.video_model.blocks[i], model.audio_model.blocks[i]] for i in range(n)]
        self.cpu: List[Dict[nn.Parameter, torch.Tensor]] = []
        for i, pair in enumerate(self.pairs):
            stash = {}
            for block in pair:
                for p in block.parameters():
                    data = p.data.to("cpu")
                    stash[p] = data.pin_memory() if pin and i not in self.resident else data
            self.cpu.append(stash)
        # everything but the swapped blocks lives on the device
        blocks = {id(b) for i, pair in enumerate(self.pairs) if i not in self.resident for b in pair}
        for module in model.modules():
            if id(module) in blocks:
                continue
            for p in module.parameters(recurse=False):
                p.data = p.data.to(self.device)
        for i, stash in enumerate(self.cpu):
            for p, data in stash.items():
                p.data = data.to(self.device) if i in self.resident else data
        self.stream = torch.cuda.Stream(self.device) if cuda and prefetch else None
        self.pending: Dict[int, Dict[nn.Parameter, torch.Tensor]] = {}
        self.loaded: set = set(self.resident)
        self.transfers = 0
        model.block_swap = self

    def _copy(self, i: int) -> Dict[nn.Parameter, torch.Tensor]:
        self.transfers += 1
        return {p: data.to(self.device, non_blocking=True) for p, data in self.cpu[i].items()}

    def prefetch(self, i: int) -> None:
        if i >= len(self.pairs) or i in self.resident or i in self.pending or i in self.loaded:
            return
        if self.stream is None:
            return
        with torch.cuda.stream(self.stream):
            self.pending[i] = self._copy(i)

    def enter(self, i: int) -> None:
        """Called by the model before fusion block i runs."""
        if self.model.training and torch.is_grad_enabled():
            raise RuntimeError("BlockSwap is for inference: run under torch.no_grad() with model.eval(), or set model.block_swap = None to train")
        if i in self.resident:
            return
        if i in self.pending:
            main = torch.cuda.current_stream(self.device)
            main.wait_stream(self.stream)
            copies = self.pending.pop(i)
            for data in copies.values():
                data.record_stream(main)  # made on the side stream, used on the main one
        else:
            copies = self._copy(i)
        for p, data in copies.items():
            p.data = data
        self.loaded.add(i)
        self.prefetch(i + 1)

    def exit(self, i: int) -> None:
        """Called after block i: point its parameters back at the CPU copies, freeing device memory."""
        if i in self.resident:
            return
        for p, data in self.cpu[i].items():
            p.data = data
        self.loaded.discard(i)
