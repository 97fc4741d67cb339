"""Rectified-flow sampling: x_t = (1 - t) x_0 + t * noise, the model predicts v = noise - x_0.

Used by the command line, the tests and training previews; inside ComfyUI the native samplers
drive the model instead. Streams are sampled together on one schedule; what `hold` names stays at
its given latent: a whole stream (the clean conditioning stream of a2v / v2a) or the positions of a
mask (i2av's first latent frame, an extension's overlap), written back after every step as Ovi's
engine writes the image latent before each.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, Mapping, Optional, Union

import torch

METHODS = ("euler", "dpmpp_2m")
DEFAULT_METHOD = "dpmpp_2m"  # generate()'s and the command line's


def shift_sigmas(t: torch.Tensor, shift: float) -> torch.Tensor:
    """t' = s t / (1 + (s - 1) t): more steps at high noise for s > 1."""
    return shift * t / (1 + (shift - 1) * t)


def flow_sigmas(steps: int, shift: float = 1.0, device=None) -> torch.Tensor:
    """steps + 1 noise levels from 1 down to 0."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=device)
    return shift_sigmas(t, shift)


VelocityFn = Callable[[Dict[str, torch.Tensor], float], Dict[str, torch.Tensor]]
HoldArg = Union[Iterable[str], Mapping[str, Optional[torch.Tensor]]]


def hold_masks(hold: HoldArg) -> Dict[str, Optional[torch.Tensor]]:
    """name -> bool mask of the held positions (broadcastable to the latent), None for a whole stream."""
    if isinstance(hold, Mapping):
        return dict(hold)
    return {name: None for name in hold}


def restore_held(x: Dict[str, torch.Tensor], given: Dict[str, torch.Tensor],
                 masks: Dict[str, Optional[torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """x with its held positions set back to the given latents."""
    out = dict(x)
    for name, mask in masks.items():
        out[name] = given[name] if mask is None else torch.where(mask.to(given[name].device), given[name], x[name])
    return out


@torch.no_grad()
def sample(velocity: VelocityFn, latents: Dict[str, torch.Tensor], sigmas: torch.Tensor,
           method: str = "euler", hold: HoldArg = (),
           callback: Optional[Callable[[int, int, Dict[str, torch.Tensor]], None]] = None) -> Dict[str, torch.Tensor]:
    """Integrate the flow ODE from sigmas[0] to sigmas[-1].

    latents: name -> tensor at sigmas[0] (noise for generated streams, the clean latent for held
    ones or held positions). hold: stream names held whole, or name -> bool mask of held positions.
    velocity(latents, sigma) returns name -> velocity. callback(i, steps, latents) after each step
    (progress bars, previews, cancellation).
    """
    if method not in METHODS:
        raise ValueError(f"Unknown sampler {method!r}; expected one of {METHODS}")
    masks = hold_masks(hold)
    whole = {name for name, mask in masks.items() if mask is None}
    given = dict(latents)
    x = dict(latents)
    sig = [float(s) for s in sigmas]
    prev_x0, prev_h = None, None
    steps = len(sig) - 1
    for i in range(steps):
        s, s_next = sig[i], sig[i + 1]
        v = velocity(x, s)
        x0 = {k: x[k] - s * v[k] for k in x if k not in whole}
        if method == "euler":
            for k in x0:
                x[k] = x[k] + (s_next - s) * v[k]
        else:
            x, prev_x0, prev_h = _dpmpp_2m_step(x, x0, s, s_next, prev_x0, prev_h)
        x = restore_held(x, given, masks)
        if callback is not None:
            callback(i, steps, x)
    return x


def _lambda(s: float) -> float:
    """log(alpha / sigma) with alpha = 1 - sigma; +-inf at the ends."""
    if s <= 0:
        return math.inf
    if s >= 1:
        return -math.inf
    return math.log((1 - s) / s)


def _dpmpp_2m_step(x, x0, s, s_next, prev_x0, prev_h):
    """DPM-Solver++(2M) in the flow parameterisation (data prediction, second-order multistep)."""
    h = _lambda(s_next) - _lambda(s)
    out = dict(x)
    if s_next <= 0:  # the last step lands on the data prediction (first order, as DPM-Solver++)
        out.update(x0)
        return out, x0, h
    a, a_next = 1 - s, 1 - s_next
    # alpha_next * (exp(-h) - 1) written with ratios so that s = 1 (alpha = 0) is exact
    coef = s_next * a / s - a_next
    if prev_x0 is not None and math.isfinite(prev_h) and math.isfinite(h):
        d = _second_order(x0, prev_x0, prev_h, h)
    else:
        d = x0
    for k in x0:
        out[k] = (s_next / s) * x[k] - coef * d[k]
    return out, x0, h


def _second_order(x0, prev_x0, prev_h, h):
    r = prev_h / h
    return {k: (1 + 1 / (2 * r)) * x0[k] - (1 / (2 * r)) * prev_x0[k] for k in x0}
