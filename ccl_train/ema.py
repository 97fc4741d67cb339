"""Exponential moving average of the trainable weights: what sampling and evaluation should use.

The average is kept in float32 whatever the weights' dtype (a 0.999 decay is below bf16's
resolution) and only for parameters that train, since frozen ones never change. With warmup the
decay after n updates is min(decay, (1 + n) / (10 + n)), so early averages are not dominated by
the initial weights.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterable

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, names: Iterable[str], decay: float, warmup: bool = True):
        params = dict(model.named_parameters())
        self.decay, self.warmup = decay, warmup
        self.updates = 0
        self.shadow: Dict[str, torch.Tensor] = {n: params[n].detach().float().clone() for n in names}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """shadow <- d * shadow + (1 - d) * weight, for every tracked parameter."""
        weight = 1.0 - self.current_decay()
        params = dict(model.named_parameters())
        for name, s in self.shadow.items():
            s.lerp_(params[name].detach().float(), weight)
        self.updates += 1

    @contextmanager
    def applied(self, model: torch.nn.Module):
        """Swap the averaged weights into the model (no copy of the model; exact restore after)."""
        params = dict(model.named_parameters())
        saved = {}
        try:
            for name, s in self.shadow.items():
                saved[name] = params[name].data
                params[name].data = s.to(saved[name].device)
            yield model
        finally:
            for name, data in saved.items():
                params[name].data = data

    def state_dict(self) -> dict:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict, shadow: Dict[str, torch.Tensor]) -> None:
        """Restore the counters and the averaged weights (shadow: name -> tensor, e.g. from ema.safetensors)."""
        missing = sorted(set(self.shadow) - set(shadow))
        if missing:
            raise KeyError(f"EMA weights lack {len(missing)} trained parameters (first: {missing[:3]}); the "
                           f"checkpoint was made with other trainable sets (TrainConfig.train)")
        self.updates = int(state["updates"])
        for name, s in self.shadow.items():
            s.copy_(shadow[name])
