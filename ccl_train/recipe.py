"""The CCL-from-Ovi recipe: a pretrained Ovi-layout pair becomes a CCL model in two stages.

1. `fusion`: context tokens are added to the checkpoint (load_checkpoint's overrides: n_ctx, a very
   negative ctx_logit_init so the start is Ovi's output, TARP windows, aligned RoPE from the latent
   rates) and only the cross-modal parameters train, towers frozen, on the DCR task mix with text
   and route dropout.
2. `joint`: everything trains, the towers at a lower learning rate.

Each stage is one `train()` run directory under run_root (resumable; sharded with FSDP2 by default),
followed on rank 0 by an export of its EMA weights to `<stage>.safetensors` (a CCL Model Loader file)
and, when held-out clips are given, the validation loss of every DCR task on it
(`<stage>.validation.json`, validation.py), then an empty `<stage>.done`. A stage with its `.done`
is skipped, so rerunning the same command after a preemption continues where it stopped. docs/TRAINING.md gives the defaults and
where they come from.

    torchrun --nproc-per-node 8 -m ccl_train.recipe --pretrained ovi.safetensors --cache latents/ \\
        --run-root runs/ccl-ovi --set fusion.steps=2000 --set joint.steps=8000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

import torch

from ccl_core.jsonconfig import JsonConfig, parse_sets

from . import distributed
from .config import TrainConfig, stage_config

# Switches that turn an Ovi-layout checkpoint into CCL (ModelConfig fields, load_checkpoint overrides).
CCL_FROM_OVI = {"fusion": "ccl", "n_ctx": 8, "ctx_logit_init": -10.0, "tarp_window": 2, "aligned_rope": True,
                "audio_rope_scale": None}
STAGE_NAMES = ("fusion", "joint")


@dataclass
class Recipe(JsonConfig):
    _json_indent = 2
    model_overrides: Dict[str, object] = field(default_factory=lambda: dict(CCL_FROM_OVI))
    # TrainConfig fields of every stage, then of each stage (over stage_config(name)).
    common: Dict[str, object] = field(default_factory=lambda: {"parallel": "fsdp", "gradient_checkpointing": True})
    fusion: Dict[str, object] = field(default_factory=lambda: {"steps": 2000, "lr_fusion": 1e-4})
    joint: Dict[str, object] = field(default_factory=lambda: {"steps": 8000, "lr_fusion": 1e-4, "lr_towers": 1e-5})
    export_dtype: Optional[str] = "bf16"  # dtype of the exported <stage>.safetensors (None: fp32)
    validation_batch: int = 4

    def stage(self, name: str) -> TrainConfig:
        if name not in STAGE_NAMES:
            raise ValueError(f"the recipe's stages are {STAGE_NAMES}, got {name!r}")
        return stage_config(name, **{**self.common, **getattr(self, name)})


def run_recipe(start: str, data: Callable[..., Iterable], run_root: str, recipe: Optional[Recipe] = None,
               validation: Optional[Dict[str, torch.Tensor]] = None, device=None) -> List[str]:
    """Run both stages from the checkpoint `start`; return the exported files (one per stage).

    data(rank=, world_size=, stage=) gives this rank's source (data.py's contract); validation is
    {"video", "audio", "text"} latents of held-out clips, or None. Under torchrun every rank calls it.
    """
    from ccl_core.checkpoint import load_checkpoint
    from .fsdp import load_full_model
    from .loop import train
    from .rundir import checkpoints

    recipe = recipe or Recipe()
    info = distributed.setup(device)  # one group for all stages (train() then leaves it alone)
    exported = []
    try:
        previous = None
        for name in STAGE_NAMES:
            cfg = recipe.stage(name)
            run_dir = os.path.join(run_root, name)
            out = os.path.join(run_root, f"{name}.safetensors")
            done = os.path.join(run_root, f"{name}.done")
            if not os.path.exists(done):
                if cfg.parallel == "fsdp" and not info.is_main:  # FSDP reads rank 0's weights only
                    model = _meta_model(start, recipe.model_overrides, previous)
                elif previous is None:
                    model = load_checkpoint(start, dtype="fp32", overrides=recipe.model_overrides)
                elif cfg.parallel == "fsdp":
                    model, _ = load_full_model(previous, "model")  # chain the optimised weights, not the EMA
                else:
                    model = load_checkpoint(os.path.join(previous, "model.safetensors"), dtype="fp32")
                source = data(rank=info.rank, world_size=info.world_size, stage=name)
                train(model, source, cfg, run_dir, device=info.device, resume=True)
                del model
                if info.is_main:
                    _export(checkpoints(run_dir)[-1][1], out, cfg, recipe.export_dtype)
                    if validation is not None:
                        _validate(out, validation, cfg, recipe.validation_batch, info.device)
                    open(done, "w").close()
                # the others wait for the file, not in a collective: at Ovi's size the export and the
                # validation can outlast a process group's timeout
                while not os.path.exists(done):
                    time.sleep(2.0)
            exported.append(out)
            found = checkpoints(run_dir)
            if not found:
                raise FileNotFoundError(f"{run_dir} has no checkpoint to continue from; delete {done} to train the "
                                        f"{name} stage again")
            previous = found[-1][1]
    finally:
        distributed.teardown(info)
    return exported


def _meta_model(start: str, overrides: dict, previous: Optional[str]):
    """The model of `start` (or of the previous stage's checkpoint) on the meta device: no memory."""
    from ccl_core.checkpoint import infer_config, read_header
    from ccl_core.config import ModelConfig
    from ccl_core.model import DualStreamModel
    from .fsdp import read_meta

    config = infer_config(read_header(start), overrides) if previous is None else \
        ModelConfig.from_json(read_meta(previous)["model_config"])
    with torch.device("meta"):
        return DualStreamModel(config)


def _export(checkpoint_dir: str, out: str, cfg: TrainConfig, dtype: Optional[str]) -> None:
    """The stage's EMA weights (model weights without an EMA) as one CCL Model Loader file."""
    from ccl_core.checkpoint import DTYPE_NAMES, load_checkpoint, save_checkpoint
    from .fsdp import export_checkpoint

    weights = "ema" if cfg.ema_decay is not None else "model"
    if cfg.parallel == "fsdp":
        export_checkpoint(checkpoint_dir, out, weights=weights, dtype=dtype)
        return
    model = load_checkpoint(os.path.join(checkpoint_dir, f"{weights}.safetensors"), dtype="fp32")
    save_checkpoint(model, out, metadata={"stage": cfg.stage, "ema": int(weights == "ema")}, dtype=DTYPE_NAMES[dtype])


def _validate(path: str, data: Dict[str, torch.Tensor], cfg: TrainConfig, batch: int, device) -> None:
    from ccl_core.checkpoint import load_checkpoint
    from .validation import validation_losses

    model = load_checkpoint(path, dtype="bf16" if torch.device(device).type == "cuda" else "fp32", device=device)
    losses = validation_losses(model, data, cfg, batch_size=batch, device=device)
    with open(path.removesuffix(".safetensors") + ".validation.json", "w") as f:
        json.dump(losses, f, indent=2, sort_keys=True)


def main(argv=None) -> None:
    from .cache import LatentCache

    p = argparse.ArgumentParser(prog="python -m ccl_train.recipe", description=__doc__.split("\n")[0])
    p.add_argument("--pretrained", required=True, help="Ovi-layout (or CCL) checkpoint to start from")
    p.add_argument("--cache", required=True, help="latent cache directory (python -m ccl_train.cache)")
    p.add_argument("--run-root", required=True)
    p.add_argument("--recipe", help="a Recipe JSON file (defaults: CCL_FROM_OVI, docs/TRAINING.md)")
    p.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                   help="a TrainConfig field of one stage (fusion.steps=100) or of both (common.lr_fusion=3e-5)")
    p.add_argument("--model-overrides", help="JSON replacing the recipe's ModelConfig switches")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--holdout", type=int, default=0, help="clips kept out of training for validation losses")
    p.add_argument("--encoders", help="expected encoder identity (JSON); default: whatever made the cache")
    args = p.parse_args(argv)

    recipe = Recipe()
    if args.recipe:
        with open(args.recipe) as f:
            recipe = Recipe.from_dict(json.load(f))
    for key, value in parse_sets(args.set).items():
        part, sep, fname = key.partition(".")
        if not sep or part not in ("common",) + STAGE_NAMES:
            raise SystemExit(f"--set takes common.KEY=VALUE, fusion.KEY=VALUE or joint.KEY=VALUE, got {key!r}")
        getattr(recipe, part)[fname] = value
    if args.model_overrides:
        recipe.model_overrides = json.loads(args.model_overrides)
    for name in STAGE_NAMES:
        recipe.stage(name)  # a bad field fails here, before any loading
    from ccl_core.checkpoint import infer_config, read_header

    cache = LatentCache(args.cache, expect=json.loads(args.encoders) if args.encoders else None)
    cache.check_model(infer_config(read_header(args.pretrained), recipe.model_overrides))
    record = os.path.join(args.run_root, "recipe.json")
    if os.path.exists(record):  # a rerun continues the same recipe on latents of the same encoders
        with open(record) as f:
            before = json.load(f)
        if before["encoders"] != cache.identity:
            raise SystemExit(f"{args.run_root} was trained on latents of other encoders ({before['encoders']}) "
                             f"than {args.cache} ({cache.identity}); use a new --run-root")
    train_idx, val_idx = cache.split(args.holdout)

    def data(rank, world_size, stage):
        return cache.batches(train_idx, args.batch_size, rank=rank, world_size=world_size,
                             seed=STAGE_NAMES.index(stage))

    validation = cache.tensors(val_idx) if val_idx else None
    if int(os.environ.get("RANK", "0")) == 0:
        os.makedirs(args.run_root, exist_ok=True)
        with open(record + ".tmp", "w") as f:
            json.dump({"recipe": recipe.to_dict(), "encoders": cache.identity, "start": args.pretrained,
                       "cache": args.cache}, f, indent=2, sort_keys=True)
        os.replace(record + ".tmp", record)
    for path in run_recipe(args.pretrained, data, args.run_root, recipe, validation):
        print(path)


if __name__ == "__main__":
    main()
