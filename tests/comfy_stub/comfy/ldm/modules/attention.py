"""Stub of comfy/ldm/modules/attention.py: `optimized_attention`, the dispatcher models call.

Mimics attention_pytorch's contract: (q, k, v, heads, mask=None, skip_reshape=False,
skip_output_reshape=False); [B, L, H*D] in and out, or [B, H, L, D] with the skip flags; scale
1/sqrt(D). CALLS counts calls so tests can see the model goes through it.
"""
import torch.nn.functional as F

CALLS = [0]


def optimized_attention(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False,
                        skip_output_reshape=False, **kwargs):
    CALLS[0] += 1
    if not skip_reshape:
        b, _, inner = q.shape
        q, k, v = (t.view(b, -1, heads, inner // heads).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if not skip_output_reshape:
        out = out.transpose(1, 2).flatten(2)
    return out
