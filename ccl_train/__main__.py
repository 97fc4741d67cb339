"""Command line: python -m ccl_train (or torchrun ... -m ccl_train) for one stage.

    torchrun --nproc-per-node 8 -m ccl_train --run-dir runs/joint --stage joint \
        --model ovi.safetensors --model-overrides '{"fusion": "ccl", "n_ctx": 8, "ctx_logit_init": -10}' \
        --data mypkg.data:make_source --set steps=20000 --set lr_fusion=5e-5 --set parallel=fsdp --resume

--data names a callable `module:function(rank=..., world_size=...)` that returns this rank's
data source (data.py's contract). --model is a checkpoint (loaded in fp32; with parallel=fsdp only
rank 0 reads it, the others build the model on the meta device) or preset:NAME for a freshly
initialised model of a config preset (config.PRESETS, e.g. preset:tiny). The CCL-from-Ovi recipe
(both stages, from a latent cache) is `python -m ccl_train.recipe`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
from typing import List, Optional

import torch

from ccl_core.checkpoint import infer_config, load_checkpoint, read_header
from ccl_core.config import PRESETS
from ccl_core.jsonconfig import parse_sets
from ccl_core.model import DualStreamModel

from .config import TrainConfig, stage_config
from .loop import train


def build_model(spec: str, overrides: dict, meta: bool = False) -> DualStreamModel:
    """The model to train; meta=True builds it on the meta device (FSDP ranks other than 0 read no weights)."""
    if spec.startswith("preset:"):
        name = spec.split(":", 1)[1]
        if name not in PRESETS:
            raise SystemExit(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        with torch.device("meta") if meta else contextlib.nullcontext():
            return DualStreamModel(PRESETS[name](**overrides))
    if meta:
        with torch.device("meta"):
            return DualStreamModel(infer_config(read_header(spec), overrides or None))
    return load_checkpoint(spec, dtype="fp32", overrides=overrides or None)


def load_factory(spec: str):
    module, sep, name = spec.partition(":")
    if not sep:
        raise SystemExit(f"--data must be module:function, got {spec!r}")
    return getattr(importlib.import_module(module), name)


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ccl_train", description=__doc__.split("\n")[0])
    p.add_argument("--run-dir", required=True)
    p.add_argument("--model", required=True, help="checkpoint path, or preset:NAME for a fresh model")
    p.add_argument("--model-overrides", default="{}", help="JSON of ModelConfig fields to change")
    p.add_argument("--data", required=True, help="module:function(rank=, world_size=) -> data source")
    p.add_argument("--stage", default="joint", help="preset stage (video, audio, joint, fusion)")
    p.add_argument("--config", help="a TrainConfig JSON file (instead of --stage)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig field")
    p.add_argument("--device", default=None)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)

    if args.config:
        with open(args.config) as f:
            cfg = TrainConfig.from_dict({**json.load(f), **parse_sets(args.set)})
    else:
        cfg = stage_config(args.stage, **parse_sets(args.set))
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    model = build_model(args.model, json.loads(args.model_overrides), meta=cfg.parallel == "fsdp" and rank != 0)
    data = load_factory(args.data)(rank=rank, world_size=world)
    train(model, data, cfg, args.run_dir, device=args.device, resume=args.resume)


if __name__ == "__main__":
    main()
