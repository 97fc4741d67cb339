"""The CCL keys of a CONDITIONING entry, and the null text a negative defaults to.

A task node sets TASK_KEYS on every entry (read by the model adapter, nodes/comfy_model.py); every
guidance branch carries the positive's. A text encoder may put its own null text under NULL_TEXT_KEY
(CCL ToyAV Text Encode does); null_text_like prefers it over the model's (ccl_core.latent_spec).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..ccl_core.latent_spec import LatentSpec, null_text_for

TASK_KEYS = ("ccl_task", "ccl_clean_video", "ccl_clean_audio", "ccl_prefix_video", "ccl_prefix_audio")
NULL_TEXT_KEY = "ccl_null_text_embedding"


def null_text_like(conditioning, spec: Optional[LatentSpec] = None):
    """The null text for every entry of a CONDITIONING: the entry's own encoder's (NULL_TEXT_KEY), else
    the model's (spec), else zeros."""
    out = []
    for t, d in conditioning:
        null = d.get(NULL_TEXT_KEY)
        if torch.is_tensor(null):
            null = null.to(device=t.device, dtype=t.dtype)
            if null.shape[0] != t.shape[0]:
                null = null[:1].expand(t.shape[0], *null.shape[1:])
        else:
            null = null_text_for(spec, t)
        out.append([null, dict(d)])
    return out
