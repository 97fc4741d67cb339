"""ccl_lab: the ToyAV research tooling (docs/TOYAV.md, docs/ABLATIONS.md), kept out of the runtime package.

`world` holds the rules, `generator` makes clips with exact ground truth, `metrics` measures
synchrony and semantics on any decoded clip; these three are plain numpy (PyAV only for reading mp4
files). `data` encodes clips into training latents, `train_autoencoders` and `train_embedded` train
the shipped ToyAV files, `evaluate` scores generations and `ablation` runs the ablation table. This
package imports ccl_core (the runtime) and ccl_train (the training library); neither imports it.
"""

from .generator import Clip, ClipBatch, generate_batch, generate_clip, iter_clips
from .metrics import aggregate, load_mp4, score_clip
from .world import COLOURS, MOTIONS, PROMPTS, SHAPES, make_prompt, parse_prompt

__all__ = [
    "COLOURS", "MOTIONS", "PROMPTS", "SHAPES", "Clip", "ClipBatch", "aggregate", "generate_batch",
    "generate_clip", "iter_clips", "load_mp4", "make_prompt", "parse_prompt", "score_clip",
]
