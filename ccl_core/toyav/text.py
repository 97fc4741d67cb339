"""The ToyAV text encoder: prompts `a {colour} {shape} {motion}` -> embeddings [B, 5, 64].

The vocabulary is the ToyAV words plus two special tokens: <null> (the empty prompt, which UCG
uses as the null text) and <pad>. A prompt is lower-cased, a trailing full stop dropped, split
on whitespace and padded to MAX_TOKENS; the empty prompt is [<null>, <pad>, ...].

The embedding is fixed and deterministic (docs/TOYAV-AUTOENCODERS.md): one vector per token and
one per position, all mutually orthonormal (QR of a seeded Gaussian matrix) and scaled to unit
RMS per element, and a token's embedding is (word + position) / sqrt(2). Every token and every
position is thus exactly recoverable by a linear read-out, and the diffusion model's text
projection learns what they mean. Padded positions are zero vectors, the Wan / Ovi convention
(the diffusion model zero-pads text to text_len and attends every position), so a shorter
encoding padded with zeros is the same text. The tables are nn.Parameters, so the encoder can be fine-tuned
jointly later; the shipped file stores them with the vocabulary in its metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn

from ..assets import ASSETS, TEXT_FILE
from . import clip

TEXT_FORMAT = "ccl-toyav-text"
FORMAT_VERSION = "1"

PAD, NULL = "<pad>", "<null>"
WORDS = ("a",) + tuple(clip.COLOURS) + tuple(clip.SHAPES) + tuple(clip.MOTIONS)
VOCAB = (PAD, NULL) + WORDS
MAX_TOKENS = 5
TEXT_DIM = 64
SEED = 0


def orthonormal_tables(vocab_size: int, max_tokens: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token and position tables whose vocab_size + max_tokens rows are mutually orthogonal,
    each with unit RMS per element (norm sqrt(dim))."""
    n = vocab_size + max_tokens
    if n > dim:
        raise ValueError(f"{n} orthogonal vectors do not fit in {dim} dimensions")
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, n, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # unique QR: a deterministic table for the seed
    rows = (q.T * dim ** 0.5).to(torch.float32)
    return rows[:vocab_size].contiguous(), rows[vocab_size:].contiguous()


class ToyAVTextEncoder(nn.Module):
    """`encode(prompts) -> (embeddings [B, MAX_TOKENS, dim], mask [B, MAX_TOKENS] bool)`."""

    def __init__(self, vocab: Iterable[str] = VOCAB, max_tokens: int = MAX_TOKENS, dim: int = TEXT_DIM,
                 seed: int = SEED):
        super().__init__()
        self.vocab = tuple(vocab)
        if self.vocab[:2] != (PAD, NULL):
            raise ValueError(f"the vocabulary must start with {PAD!r}, {NULL!r}")
        self.index = {word: i for i, word in enumerate(self.vocab)}
        self.max_tokens, self.dim, self.seed = int(max_tokens), int(dim), int(seed)
        tokens, positions = orthonormal_tables(len(self.vocab), self.max_tokens, self.dim, self.seed)
        self.token_embedding = nn.Parameter(tokens)
        self.position_embedding = nn.Parameter(positions)

    @property
    def text_dim(self) -> int:
        return self.dim

    @property
    def words(self) -> tuple:
        return self.vocab[2:]

    def tokenize(self, prompts) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids [B, MAX_TOKENS] (long) and mask [B, MAX_TOKENS] (True on real tokens)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        ids = torch.full((len(prompts), self.max_tokens), self.index[PAD], dtype=torch.long)
        for b, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"prompts must be strings, got {type(prompt).__name__} at index {b}")
            words = prompt.strip().lower().rstrip(".").split()
            if not words:
                ids[b, 0] = self.index[NULL]
                continue
            unknown = [word for word in words if word not in self.index or word in (PAD, NULL)]
            if unknown:
                raise ValueError(f"unknown ToyAV word(s) {unknown} in prompt {prompt!r}; the vocabulary is: "
                                 f"{', '.join(self.words)} (prompts read 'a {{colour}} {{shape}} {{motion}}', "
                                 f"e.g. {clip.PROMPTS[0]!r}; the empty prompt is the null text)")
            if len(words) > self.max_tokens:
                raise ValueError(f"prompt {prompt!r} has {len(words)} words; at most {self.max_tokens}")
            ids[b, :len(words)] = torch.tensor([self.index[word] for word in words])
        return ids, ids != self.index[PAD]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] -> [B, L, dim]; <pad> positions are zeros."""
        pos = self.position_embedding[: ids.shape[1]]
        real = (ids != self.index[PAD]).unsqueeze(-1).to(self.token_embedding.dtype)
        return (self.token_embedding[ids] + pos[None]) * (2 ** -0.5) * real

    def encode(self, prompts) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts (a list of strings, or one string) -> (embeddings [B, MAX_TOKENS, dim] float32,
        mask [B, MAX_TOKENS] bool, True on real tokens; padded positions are zeros). "" is the
        null text, [<null>, <pad>, ...]."""
        ids, mask = self.tokenize(prompts)
        ids = ids.to(self.token_embedding.device)
        return self.embed(ids), mask.to(ids.device)

    def null(self, batch: int = 1) -> torch.Tensor:
        """The null text embedding [batch, MAX_TOKENS, dim] (the empty prompt)."""
        return self.encode([""] * batch)[0]

    def forward(self, prompts):
        return self.encode(prompts)[0]


def save_text_encoder(encoder: ToyAVTextEncoder, path) -> None:
    from safetensors.torch import save_file

    meta = {"format": TEXT_FORMAT, "version": FORMAT_VERSION,
            "config": json.dumps({"vocab": list(encoder.vocab), "max_tokens": encoder.max_tokens,
                                  "dim": encoder.dim, "seed": encoder.seed}, sort_keys=True)}
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in encoder.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def load_text_encoder(path=None, device="cpu") -> ToyAVTextEncoder:
    """The shipped ToyAV text encoder (or the one at `path`), in eval mode, frozen."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path or ASSETS / TEXT_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"ToyAV text encoder file not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    if meta.get("format") != TEXT_FORMAT:
        raise ValueError(f"{path} is not a ToyAV text encoder (metadata format {meta.get('format')!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format version {meta.get('version')!r}")
    cfg = json.loads(meta["config"])
    encoder = ToyAVTextEncoder(cfg["vocab"], cfg["max_tokens"], cfg["dim"], cfg["seed"])
    encoder.load_state_dict(load_file(str(path)), strict=True)
    return encoder.to(device).eval().requires_grad_(False)

