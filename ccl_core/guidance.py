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
from typing import Dict, Tuple

import torch

FORMS = ("joint", "decoupled", "cfg", "ovi", "none")


def ucg_joint(u, c_full, w):
    return u + w * (c_full - u)


def ucg_decoupled(u, c_text, c_full, w_text, w_av):
    return u + w_text * (c_text - u) + w_av * (c_full - c_text)


@dataclass(frozen=True)
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
                    tasks=None, text_audio=None, uncond_text_audio=None, video_prefix=None, audio_prefix=None,
                    **model_kwargs):
    """One batched model call over all branches, combined per stream (inference: no gradients).

    uncond_text is the null text (UCG, cfg) or the negative prompt (ovi). text_audio and
    uncond_text_audio give the audio tower its own prompt / negative prompt (Ovi's negative prompts
    differ per stream); they default to text and uncond_text. Texts of different token counts are
    zero-padded to a common length, which equals the model's own padding. video_prefix /
    audio_prefix: an extension's clean span (per sample), the same in every branch.
    """
    branches = guidance.branches
    n = len(branches)
    b = (video if video is not None else audio).shape[0]
    if uncond_text is None:
        uncond_text = torch.zeros_like(text)
    separate_audio = text_audio is not None or uncond_text_audio is not None
    text_audio = text if text_audio is None else text_audio
    uncond_text_audio = uncond_text if uncond_text_audio is None else uncond_text_audio
    parts = [text, uncond_text, text_audio, uncond_text_audio]
    tokens = max(p.shape[1] for p in parts)
    text, uncond_text, text_audio, uncond_text_audio = (
        _pad_tokens(p.expand(b, -1, -1) if p.shape[0] == 1 and b > 1 else p, tokens) for p in parts)
    texts, texts_audio, ctx_only, skip = [], [], [], []
    for use_text, full, skips in branches.values():
        texts.append(text if use_text else uncond_text)
        texts_audio.append(text_audio if use_text else uncond_text_audio)
        ctx_only.append(torch.full((b,), not full, dtype=torch.bool))
        skip.append(torch.full((b,), skips, dtype=torch.bool))
    if separate_audio:
        model_kwargs = dict(model_kwargs, text_audio=torch.cat(texts_audio))
    rep = lambda x: None if x is None else x.repeat((n,) + (1,) * (x.ndim - 1))
    rep_t = lambda t: t if t is None or not torch.is_tensor(t) or t.ndim == 0 else t.repeat(n)
    if tasks is not None and not isinstance(tasks, str):
        tasks = list(tasks) * n
    skip_rows = torch.cat(skip)
    kw = dict(model_kwargs)
    for key, prefix in (("video_prefix", video_prefix), ("audio_prefix", audio_prefix)):
        if prefix is not None:  # one per sample: the same for every branch
            kw[key] = torch.as_tensor(prefix, dtype=torch.long).flatten().expand(b).repeat(n)
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
