"""Guidance: unconditional context guidance (UCG) and the baselines it is compared with.

UCG's unconditional branch is the context-tokens-only route, a state the model was trained on.
With u = v(null text, ctx-only), c_t = v(text, ctx-only), c_f = v(text, full), per stream:

    joint:      v = u + w * (c_f - u)
    decoupled:  v = u + w_text * (c_t - u) + w_av * (c_f - c_t)

Baselines: "cfg" (null text, full route as the unconditional branch), "ovi" (negative text, full
route, one fusion block skipped) and "none". All branches of a step run as one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

FORMS = ("joint", "decoupled", "cfg", "ovi", "none")


def ucg_joint(u, c_full, w):
    return u + w * (c_full - u)


def ucg_decoupled(u, c_text, c_full, w_text, w_av):
    return u + w_text * (c_text - u) + w_av * (c_full - c_text)


def cfg(u, c, w):
    return u + w * (c - u)


@dataclass
class Guidance:
    form: str = "joint"
    video_scale: float = 4.0  # w (joint, cfg, ovi) or w_text (decoupled)
    audio_scale: float = 3.0
    video_av_scale: float = 2.0  # w_av (decoupled only)
    audio_av_scale: float = 2.0
    skip_block: int = 11  # "ovi": the fusion block its negative branch skips

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"Unknown guidance form {self.form!r}; expected one of {FORMS}")

    # branch name -> (uses the real text, reads the other stream, skips a block)
    @property
    def branches(self) -> Dict[str, Tuple[bool, bool, bool]]:
        return {
            "joint": {"u": (False, False, False), "c_full": (True, True, False)},
            "decoupled": {"u": (False, False, False), "c_text": (True, False, False), "c_full": (True, True, False)},
            "cfg": {"u": (False, True, False), "c_full": (True, True, False)},
            "ovi": {"u": (False, True, True), "c_full": (True, True, False)},
            "none": {"c_full": (True, True, False)},
        }[self.form]

    def combine(self, preds: Dict[str, torch.Tensor], stream: str) -> torch.Tensor:
        w = self.video_scale if stream == "video" else self.audio_scale
        if self.form == "none":
            return preds["c_full"]
        if self.form == "decoupled":
            w_av = self.video_av_scale if stream == "video" else self.audio_av_scale
            return ucg_decoupled(preds["u"], preds["c_text"], preds["c_full"], w, w_av)
        return ucg_joint(preds["u"], preds["c_full"], w)  # joint, cfg and ovi share the formula


def _pad_tokens(a: torch.Tensor, n: int) -> torch.Tensor:
    if a.shape[1] == n:
        return a
    return torch.cat([a, a.new_zeros(a.shape[0], n - a.shape[1], a.shape[2])], dim=1)


@torch.no_grad()
def guided_velocity(model, video, audio, t_video, t_audio, text, uncond_text, guidance: Guidance,
                    tasks=None, **model_kwargs):
    """One batched model call over all branches, combined per stream (inference: no gradients).

    uncond_text is the null text (UCG, cfg) or the negative prompt (ovi). Texts of different token
    counts are zero-padded to a common length, which equals the model's own padding.
    """
    branches = guidance.branches
    n = len(branches)
    b = (video if video is not None else audio).shape[0]
    tokens = max(text.shape[1], uncond_text.shape[1] if uncond_text is not None else 0)
    if uncond_text is None:
        uncond_text = torch.zeros_like(text)
    if uncond_text.shape[0] == 1 and b > 1:
        uncond_text = uncond_text.expand(b, -1, -1)
    text, uncond_text = _pad_tokens(text, tokens), _pad_tokens(uncond_text, tokens)
    texts, ctx_only, skip = [], [], []
    for use_text, full, skips in branches.values():
        texts.append(text if use_text else uncond_text)
        ctx_only.append(torch.full((b,), not full, dtype=torch.bool))
        skip.append(torch.full((b,), skips, dtype=torch.bool))
    rep = lambda x: None if x is None else x.repeat((n,) + (1,) * (x.ndim - 1))
    rep_t = lambda t: t if t is None or not torch.is_tensor(t) or t.ndim == 0 else t.repeat(n)
    if tasks is not None and not isinstance(tasks, str):
        tasks = list(tasks) * n
    skip_rows = torch.cat(skip)
    kw = dict(model_kwargs)
    if bool(skip_rows.any()):
        kw.update(skip_block=guidance.skip_block, skip_rows=skip_rows)
    out_v, out_a = model(rep(video), rep(audio), rep_t(t_video), rep_t(t_audio), torch.cat(texts), tasks=tasks,
                         ctx_only=torch.cat(ctx_only), **kw)
    result = []
    for name, out in (("video", out_v), ("audio", out_a)):
        if out is None:
            result.append(None)
            continue
        preds = dict(zip(branches, out.chunk(n)))
        result.append(guidance.combine(preds, name))
    return result[0], result[1]
