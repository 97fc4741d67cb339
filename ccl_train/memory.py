"""Memory per GPU of FSDP2 training, computed from the model's shapes (not measured).

    python -m ccl_train.memory            # the table of docs/TRAINING.md (Ovi's size)

Sharded state, per parameter and divided by the ranks: fp32 master weight 4 B, fp32 gradient 4 B
(fsdp_reduce_dtype fp32), AdamW's two fp32 moments 8 B, the fp32 EMA 4 B (of trainable parameters).
Unsharded: one block pair's bf16 weights and bf16 gradients, twice (the pair in use and the next
one prefetched), and the root's (embeddings, heads: FSDP2 keeps the root gathered from forward to
backward).

Activations with gradient checkpointing (one checkpoint per block pair), per sample: every pair
keeps its input tokens (bf16); the pair being recomputed in the backward pass holds its saved
tensors, counted per token from the block's code (block.py, attention.py, layers.py) assuming
fused attention kernels (flash / memory-efficient SDPA keep q, k, v, output and log-sum-exp, never
the attention matrix). Norms upcast to fp32 and keep their fp32 input (layers.py). The estimate
leaves out allocator fragmentation and the autograd buffers of the gradient flowing back, so real
peaks are higher; treat it as a lower bound to check against a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch

GB = 1e9


def count_parameters(config) -> Dict[str, int]:
    """Exact counts from a model built on the meta device: total, one block pair, cross-modal, root."""
    from ccl_core.model import DualStreamModel

    with torch.device("meta"):
        model = DualStreamModel(config)
    total = sum(p.numel() for p in model.parameters())
    pair = sum(p.numel() for b in (model.video_model.blocks[0], model.audio_model.blocks[0]) for p in b.parameters())
    cross = sum(p.numel() for p in model.param_groups()[0])
    blocks = sum(p.numel() for n, p in model.named_parameters() if ".blocks." in n)
    return {"total": total, "pair": pair, "cross_modal": cross, "root": total - blocks}


def activation_bytes_per_token_per_pair(dim: int, ffn: int) -> int:
    """Saved-for-backward bytes of one token in one block pair (see the module doc for the count).

    self-attention half 34*dim (LayerNorm fp32 input 4d, its output 2d, modulated input 2d, q and k
    each 10d: projection, RMSNorm fp32 input and output, bf16 rope'd copy, v 2d, SDPA output 2d,
    gated output 2d); cross-attention + FFN half 40*dim + 4*ffn (norm3 6d, q 10d, text attention output
    2d, TARP gather / attention / scatter 6d, o input 2d, norm2 6d, modulated 2d, FFN hidden and GELU
    output 2*ffn each, gated output 2d); the other tower's block reads this token as a fusion key /
    value 18*dim (pre-norm 6d, k 10d, v 2d).
    """
    return (34 + 40 + 18) * dim + 4 * ffn


@dataclass
class Estimate:
    world: int
    params: float  # bytes per GPU
    grads: float
    adam: float
    ema: float
    gathered: float  # unsharded bf16 weights + gradients of two block pairs and of the root
    checkpoints: float  # every pair's input tokens
    recompute: float  # one pair's saved tensors during its backward

    @property
    def total(self) -> float:
        return self.params + self.grads + self.adam + self.ema + self.gathered + self.checkpoints + self.recompute


def estimate(config, world: int, video_tokens: int, audio_tokens: int, trainable: float = 1.0,
             ema: bool = True) -> Estimate:
    """Bytes per GPU for batch 1 per GPU; `trainable` is the fraction of parameters that train."""
    n = count_parameters(config)
    p = n["total"]
    tokens = video_tokens + audio_tokens
    return Estimate(
        world=world, params=4 * p / world, grads=4 * p * trainable / world, adam=8 * p * trainable / world,
        ema=(4 * p * trainable / world) if ema else 0.0, gathered=(2 + 2 * trainable) * (2 * n["pair"] + n["root"]),
        checkpoints=config.num_layers * tokens * config.dim * 2,
        recompute=tokens * activation_bytes_per_token_per_pair(config.dim, config.ffn_dim))


def main() -> None:
    from ccl_core.config import ovi_config

    cfg = ovi_config(fusion="ccl", n_ctx=8, tarp_window=2)
    n = count_parameters(cfg)
    print(f"parameters {n['total']:,} (one block pair {n['pair']:,}; cross-modal {n['cross_modal']:,}; "
          f"root {n['root']:,})")
    clips = {"720x720 (704x736 bucket)": 31 * 22 * 23, "704x1280": 31 * 22 * 40}
    for name, vt in clips.items():
        print(f"\n{name}: {vt:,} video + 157 audio tokens; per token per pair "
              f"{activation_bytes_per_token_per_pair(cfg.dim, cfg.ffn_dim) / 1e3:.0f} kB")
        print("| GPUs | stage | fp32 params | fp32 grads | Adam | EMA | gathered bf16 | checkpoints | recompute | total |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for world in (8, 16, 32):
            for stage, fraction in (("joint", 1.0), ("fusion", n["cross_modal"] / n["total"])):
                e = estimate(cfg, world, vt, 157, trainable=fraction)
                cols = (e.params, e.grads, e.adam, e.ema, e.gathered, e.checkpoints, e.recompute, e.total)
                print(f"| {world} | {stage} | " + " | ".join(f"{c / GB:.1f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
