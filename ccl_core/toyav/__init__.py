"""ToyAV: the procedurally generated audio-video world of the embedded model (docs/TOYAV.md).

`world` holds the rules, `generator` makes clips with exact ground truth, `metrics` measures
synchrony and semantics on any decoded clip; these three are plain numpy (PyAV only for reading mp4
files). The autoencoders, text encoder, embedded model and the training and evaluation entry points
beside them use torch.
"""

from .generator import Clip, ClipBatch, generate_batch, generate_clip, iter_clips
from .metrics import aggregate, load_mp4, score_clip
from .world import COLOURS, MOTIONS, PROMPTS, SHAPES, make_prompt, parse_prompt

__all__ = [
    "COLOURS", "MOTIONS", "PROMPTS", "SHAPES", "Clip", "ClipBatch", "aggregate", "generate_batch",
    "generate_clip", "iter_clips", "load_mp4", "make_prompt", "parse_prompt", "score_clip",
]
