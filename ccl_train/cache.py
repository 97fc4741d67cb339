"""Real clips -> a sharded latent cache -> training batches.

A clip folder holds `name.mp4` files with a caption `name.txt` beside each. Captions may carry Ovi's
tags, `<S>speech<E>` and `<AUDCAP>audio description<ENDAUDCAP>`; they are checked (balanced, not
nested) and kept verbatim, since Ovi's text encoder reads them as written. Each clip is cut to the
encoders' duration from its start, resampled to their frame rate and sample rate (mono), resized
to cover their frame size and center-cropped, then encoded (encoders.py). A clip that cannot be
used is refused with the reason (no caption, unreadable, no audio, too short, ...) and listed in the
manifest; the rest is written in shards:

    cache/manifest.json            format, encoders' identity, clip format, latent shapes, shards, refused
    cache/null_text.safetensors    the empty prompt's embedding (text dropout)
    cache/shard-00000.safetensors  video [n, C, T', H', W'], audio [n, C, L], text [n, Lt, D]

Training reads it with `LatentCache(dir, expect=identity)`, which refuses a cache made by other
encoders, and `check_model(config)`, which refuses latents whose channels or rates do not fit the model.

    python -m ccl_train.cache --clips clips/ --out cache/ --encoders toyav
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ccl_core.media import MediaError, read_audio, read_video

from .data import LatentBatches
from .encoders import ClipEncoders

FORMAT, VERSION = "ccl-latent-cache", 1
MANIFEST, NULL_FILE = "manifest.json", "null_text.safetensors"
TAGS = (("<S>", "<E>"), ("<AUDCAP>", "<ENDAUDCAP>"))
_TAG = re.compile(r"<S>|<E>|<AUDCAP>|<ENDAUDCAP>")


class ClipRefused(ValueError):
    """A clip that cannot go into the cache, with the reason."""


def read_caption(path: Path) -> str:
    """The caption beside a clip, with Ovi's tags checked: each opened tag closed, none nested."""
    if not path.is_file():
        raise ClipRefused(f"no caption: write the prompt in {path.name} beside the clip")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise ClipRefused(f"caption {path.name} is not UTF-8 text") from None
    if not text:
        raise ClipRefused(f"caption {path.name} is empty")
    closing = {o: c for o, c in TAGS}
    open_tag = None
    for m in _TAG.finditer(text):
        tag = m.group()
        if tag in closing:
            if open_tag is not None:
                raise ClipRefused(f"caption {path.name}: {tag} inside {open_tag}...{closing[open_tag]}; Ovi's tags "
                                  f"do not nest")
            open_tag = tag
        elif open_tag is None or closing[open_tag] != tag:
            raise ClipRefused(f"caption {path.name}: {tag} without its opening tag "
                              f"(tags: <S>speech<E>, <AUDCAP>audio description<ENDAUDCAP>)")
        else:
            open_tag = None
    if open_tag is not None:
        raise ClipRefused(f"caption {path.name}: {open_tag} is never closed with {closing[open_tag]}")
    return text


def _probe(path: Path) -> Tuple[int, int, float]:
    """(width, height, seconds) of the first video stream."""
    import av
    try:
        with av.open(os.fspath(path)) as c:
            if not c.streams.video:
                raise ClipRefused("no video stream")
            if not c.streams.audio:
                raise ClipRefused("no audio stream (the model learns both)")
            s = c.streams.video[0]
            seconds = float(s.duration * s.time_base) if s.duration else (c.duration or 0) / 1e6
            return s.codec_context.width, s.codec_context.height, seconds
    except ClipRefused:
        raise
    except Exception as e:
        raise ClipRefused(f"unreadable: {e}") from None


def load_clip(path: Path, enc: ClipEncoders) -> Tuple[torch.Tensor, torch.Tensor]:
    """Frames [T, H, W, 3] and mono waveform [S] in the encoders' format (see module doc)."""
    width, height, seconds = _probe(path)
    need = enc.seconds
    if seconds + 0.5 / enc.fps < need:
        raise ClipRefused(f"too short: {seconds:.2f} s, the model takes {need:.2f} s")
    if width < 1 or height < 1:
        raise ClipRefused(f"no frame size in the stream ({width}x{height})")
    scale = max(enc.height / height, enc.width / width)  # cover the target, then crop the middle
    size = (max(enc.height, math.ceil(height * scale - 1e-6)), max(enc.width, math.ceil(width * scale - 1e-6)))
    try:
        frames = read_video(path, enc.fps, size, seconds=need)
        wave = read_audio(path, enc.sample_rate, seconds=need)
    except MediaError as e:
        raise ClipRefused(str(e)) from None
    top, left = (size[0] - enc.height) // 2, (size[1] - enc.width) // 2
    frames = frames[:, top:top + enc.height, left:left + enc.width]
    if frames.shape[0] != enc.frames:
        frames = F.pad(frames, (0, 0, 0, 0, 0, 0, 0, enc.frames - frames.shape[0]), mode="replicate") \
            if frames.shape[0] < enc.frames else frames[:enc.frames]
    return frames, wave


def encode_folder(clips: os.PathLike, out: os.PathLike, enc: ClipEncoders, shard_size: int = 256,
                  batch_size: int = 4, dtype: torch.dtype = torch.float32, progress=None) -> dict:
    """Encode every `*.mp4` of `clips` (sorted by name) into a cache at `out`; return the manifest."""
    from safetensors.torch import save_file

    clips, out = Path(clips), Path(out)
    if not clips.is_dir():
        raise NotADirectoryError(f"clip folder not found: {clips}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new cache directory (a cache is written once)")
    files = sorted(clips.glob("*.mp4"))
    if not files:
        raise FileNotFoundError(f"no .mp4 files in {clips}")
    out.mkdir(parents=True, exist_ok=True)
    identity = enc.identity()
    meta = {"format": FORMAT, "version": str(VERSION), "encoders": json.dumps(identity, sort_keys=True)}
    refused: Dict[str, str] = {}
    shards: List[dict] = []
    pending: Dict[str, list] = {"names": [], "video": [], "audio": [], "text": []}
    shapes = {}

    def flush(count: int):
        """Write the first `count` pending clips as one shard."""
        if not count:
            return
        tensors = {k: torch.stack(pending[k][:count]).to(dtype).contiguous() for k in ("video", "audio", "text")}
        shapes.update({k: list(v.shape[1:]) for k, v in tensors.items()})
        name = f"shard-{len(shards):05d}.safetensors"
        save_file(tensors, os.fspath(out / name), metadata=meta)
        shards.append({"file": name, "clips": pending["names"][:count]})
        for v in pending.values():
            del v[:count]

    batch: List[Tuple[str, torch.Tensor, torch.Tensor, str]] = []

    def encode_batch():
        if not batch:
            return
        pending["names"] += [b[0] for b in batch]
        pending["video"] += list(enc.encode_video(torch.stack([b[1] for b in batch])))
        pending["audio"] += list(enc.encode_audio(torch.stack([b[2] for b in batch])))
        pending["text"] += list(enc.encode_text([b[3] for b in batch]))
        batch.clear()
        while len(pending["names"]) >= shard_size:
            flush(shard_size)

    for i, path in enumerate(files):
        try:
            caption = read_caption(path.with_suffix(".txt"))
            frames, wave = load_clip(path, enc)
            batch.append((path.stem, frames, wave, caption))
        except ClipRefused as e:
            refused[path.name] = str(e)
        if len(batch) >= batch_size:
            encode_batch()
        if progress is not None:
            progress(i + 1, len(files))
    encode_batch()
    flush(len(pending["names"]))
    if not shards:
        raise ValueError(f"every clip in {clips} was refused: {refused}")
    save_file({"null_text": enc.null_text().to(dtype).contiguous()}, os.fspath(out / NULL_FILE), metadata=meta)
    manifest = {"format": FORMAT, "version": VERSION, "encoders": identity,
                "clip": {"fps": enc.fps, "frames": enc.frames, "height": enc.height, "width": enc.width,
                         "sample_rate": enc.sample_rate, "seconds": enc.seconds},
                "latent_rates": {"video": enc.video_latent_fps, "audio": enc.audio_latent_rate},
                "shapes": shapes, "dtype": str(dtype).removeprefix("torch."),
                "count": sum(len(s["clips"]) for s in shards), "shards": shards, "refused": refused}
    with open(out / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest


class LatentCache:
    """A cache written by encode_folder; `expect` (an encoders' identity) refuses another one's cache."""

    def __init__(self, path: os.PathLike, expect: Optional[dict] = None):
        self.path = Path(path)
        file = self.path / MANIFEST
        if not file.is_file():
            raise FileNotFoundError(f"{self.path} is not a latent cache (no {MANIFEST}); make one with "
                                    f"python -m ccl_train.cache --clips DIR --out {self.path}")
        with open(file) as f:
            self.manifest = json.load(f)
        if self.manifest.get("format") != FORMAT or self.manifest.get("version") != VERSION:
            raise ValueError(f"{file}: format {self.manifest.get('format')!r} version {self.manifest.get('version')!r}, "
                             f"expected {FORMAT!r} version {VERSION}")
        if expect is not None and expect != self.manifest["encoders"]:
            raise ValueError(f"the cache {self.path} was made by other encoders: {self.manifest['encoders']}, this "
                             f"training expects {expect}; encode the clips again with the expected encoders")
        self.names = [n for s in self.manifest["shards"] for n in s["clips"]]

    @property
    def identity(self) -> dict:
        return self.manifest["encoders"]

    def __len__(self) -> int:
        return len(self.names)

    def check_model(self, config) -> None:
        """Refuse latents whose channels, text width or latent rates do not fit the model config."""
        shapes, rates, problems = self.manifest["shapes"], self.manifest["latent_rates"], []
        for what, got, want in (("video channels", shapes["video"][0], config.video_channels),
                                ("audio channels", shapes["audio"][0], config.audio_channels),
                                ("text width", shapes["text"][1], config.text_dim)):
            if got != want:
                problems.append(f"{what} {got} (model {want})")
        for what, got, want in (("video latent fps", rates["video"], config.video_latent_fps),
                                ("audio latent rate", rates["audio"], config.audio_latent_rate)):
            if abs(got - want) > 1e-6 * max(1.0, abs(want)):
                problems.append(f"{what} {got} (model {want})")
        if problems:
            raise ValueError(f"the cache {self.path} does not fit the model: {', '.join(problems)}; encode the "
                             f"clips with the encoders the model was trained with")

    def split(self, holdout: int) -> Tuple[List[int], List[int]]:
        """(training, held-out) clip indices: the last `holdout` clips are never trained on."""
        if not 0 <= holdout < len(self):
            raise ValueError(f"holdout must be in [0, {len(self)}) for a cache of {len(self)} clips, got {holdout}")
        n = len(self) - holdout
        return list(range(n)), list(range(n, len(self)))

    def tensors(self, indices: Sequence[int]) -> Dict[str, torch.Tensor]:
        """video / audio / text latents of the given clips, in that order (float32)."""
        from safetensors import safe_open

        wanted = {i: k for k, i in enumerate(indices)}
        parts: Dict[str, list] = {"video": [], "audio": [], "text": []}
        order: List[int] = []
        start = 0
        for shard in self.manifest["shards"]:
            rows = [i - start for i in range(start, start + len(shard["clips"])) if i in wanted]
            if rows:
                with safe_open(os.fspath(self.path / shard["file"]), "pt") as f:
                    for key in parts:
                        parts[key].append(f.get_tensor(key)[rows].float())
                order += [wanted[start + r] for r in rows]
            start += len(shard["clips"])
        if len(order) != len(wanted):
            raise IndexError(f"clip indices out of range for a cache of {len(self)} clips")
        perm = torch.tensor(order).argsort()
        return {k: torch.cat(v)[perm] for k, v in parts.items()}

    def null_text(self) -> torch.Tensor:
        from safetensors.torch import load_file
        return load_file(os.fspath(self.path / NULL_FILE))["null_text"].float()

    def batches(self, indices: Sequence[int], batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0):
        """This rank's share (every world_size-th clip) as endless shuffled, resumable batches."""
        mine = list(indices)[rank::world_size]
        if len(mine) < batch_size:
            raise ValueError(f"rank {rank} of {world_size} gets {len(mine)} clips, fewer than batch_size "
                             f"{batch_size}: use more clips, fewer ranks or a smaller batch")
        return LatentBatches(self.tensors(mine), self.null_text(), batch_size, seed=seed * 1009 + rank)


def make_encoders(kind: str, args) -> ClipEncoders:
    from .encoders import OviEncoders, ToyAVEncoders
    if kind == "toyav":
        return ToyAVEncoders(device=args.device)
    if kind == "ovi":
        if not args.audio_hook:
            raise SystemExit("--encoders ovi needs --audio-hook module:function returning the MMAudio VAE encoder "
                             "(a callable with an `identity`); MMAudio's VAE is in no pip library")
        import importlib
        module, _, name = args.audio_hook.partition(":")
        audio = getattr(importlib.import_module(module), name)(device=args.device)
        return OviEncoders(args.wan_vae, args.umt5, audio_encoder=audio, device=args.device,
                           vae_subfolder=args.wan_vae_subfolder or None)
    raise SystemExit(f"--encoders must be toyav or ovi, got {kind!r}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m ccl_train.cache", description=__doc__.split("\n")[0])
    p.add_argument("--clips", required=True, help="folder of name.mp4 + name.txt")
    p.add_argument("--out", required=True, help="new cache directory")
    p.add_argument("--encoders", default="toyav", choices=("toyav", "ovi"))
    p.add_argument("--wan-vae", default="Wan-AI/Wan2.2-TI2V-5B-Diffusers", help="diffusers repo or folder")
    p.add_argument("--wan-vae-subfolder", default="vae")
    p.add_argument("--umt5", default="google/umt5-xxl")
    p.add_argument("--audio-hook", help="module:function(device=) -> MMAudio VAE encoder (ovi encoders)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    args = p.parse_args(argv)
    enc = make_encoders(args.encoders, args)
    manifest = encode_folder(args.clips, args.out, enc, args.shard_size, args.batch_size,
                             torch.float32 if args.dtype == "fp32" else torch.bfloat16,
                             progress=lambda i, n: print(f"\r{i}/{n}", end="", flush=True))
    print(f"\n{manifest['count']} clips in {len(manifest['shards'])} shards; {len(manifest['refused'])} refused")
    for name, reason in manifest["refused"].items():
        print(f"  {name}: {reason}")


if __name__ == "__main__":
    main()
