"""Train the embedded ToyAV model from scratch with the staged CCL recipe, and export it.

    python -m ccl_core.toyav.train_embedded --run-dir runs/toyav

Stages (the paper's recipe; docs/TRAINING.md, "Staged recipe"): the video tower on t2v, the audio tower on t2a,
then everything jointly with the DCR task mix. Each stage is a resumable run directory under
--run-dir; `--resume` continues an interrupted run. The EMA weights of the joint stage are written
to --out (the shipped file by default) with the config and the training command in the metadata.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import torch

from ..checkpoint import save_checkpoint
from ..jsonconfig import parse_sets
from ..model import DualStreamModel
from ..training import stage_config, train
from .autoencoders import AUDIO_AE_FILE, VIDEO_AE_FILE, load_audio_ae, load_video_ae
from .data import LatentBatches, load_or_encode
from .embedded import ASSETS, MODEL_FILE, toyav_config, toyav_metadata
from .text import TEXT_FILE, load_text_encoder


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", default="runs/toyav")
    ap.add_argument("--out", default=str(ASSETS / MODEL_FILE))
    ap.add_argument("--assets", default=str(ASSETS), help="folder with the autoencoders and text encoder to use")
    add_recipe_arguments(ap)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (one GPU; for several use torchrun)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None, metavar="FILE",
                    help="start from this checkpoint's weights (e.g. the shipped model, to teach it new tasks) "
                         "instead of a fresh init; its config must equal the one this command builds")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a model config field (JSON value), e.g. --set num_layers=6")
    ap.add_argument("--train-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a TrainConfig field in every stage (JSON value), e.g. --train-set timestep_shift=3")
    ap.add_argument("--joint-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a TrainConfig field in the joint stage only, e.g. --joint-set schedule=wsd "
                         "--joint-set decay_steps=2500")
    ap.add_argument("--latents", default=None, help="encoded-data cache (default RUN_DIR/latents.safetensors)")
    ap.add_argument("--workers", type=int, default=0, help="processes drawing clips while encoding")
    ap.add_argument("--save-every", type=int, default=None, help="checkpoint interval (default a quarter of a stage)")
    ap.add_argument("--keep-checkpoints", type=int, default=2, help="newest checkpoints kept per stage; 0 keeps all")
    return ap


def train_overrides(args) -> dict:
    """The TrainConfig fields a command sets in every stage."""
    return {"timestep_shift": args.timestep_shift, **parse_sets(args.train_set, "--train-set")}


RECIPE_FIELDS = ("clips", "batch", "steps_video", "steps_audio", "steps_joint", "lr", "joint_decay", "seed")


def recipe(args) -> dict:
    """What a command trains (not where or how fast): stored in the model's metadata, so that a later
    change of a default cannot hide that the shipped model was trained otherwise."""
    return {**{k: getattr(args, k) for k in RECIPE_FIELDS}, "model": parse_sets(args.set),
            "train": train_overrides(args), "joint": parse_sets(args.joint_set, "--joint-set")}


def joint_schedule(decay: float, steps: int) -> dict:
    """The joint stage's learning-rate schedule: constant, or with its last `decay` fraction of steps
    decaying linearly towards 0 (warmup-stable-decay)."""
    if not 0.0 <= decay < 1.0:
        raise SystemExit(f"--joint-decay: the fraction of the joint steps that decay must be in [0, 1), got {decay}")
    n = round(decay * steps)
    return {"schedule": "wsd", "decay_steps": n} if n > 0 else {}


def joint_overrides(named: dict, decay: float, steps: int) -> dict:
    """TrainConfig fields of the joint stage alone: --joint-decay's schedule, then the fields named
    with --joint-set (or an ablation variant); a schedule named there replaces --joint-decay's."""
    return dict(named) if "schedule" in named else {**joint_schedule(decay, steps), **named}


def main(argv=None):
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    trains = recipe(args)  # what the metadata records is what the stages get
    try:  # a bad field or value fails here, before the data is encoded
        stage_config("joint", **trains["train"])
    except (TypeError, ValueError) as e:
        raise SystemExit(f"--train-set: {e}; the fields are those of ccl_core.training.TrainConfig")
    joint = joint_overrides(trains["joint"], args.joint_decay, args.steps_joint)
    try:  # the joint stage's config exactly as train_stages will build it
        stage_train_config("joint", args.steps_joint, args.lr, seed=args.seed, save_every=args.save_every,
                           keep_checkpoints=args.keep_checkpoints, overrides=trains["train"], joint=joint)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"--joint-decay / --joint-set: {e}; the fields are those of ccl_core.training.TrainConfig")
    t0 = time.time()

    assets = Path(args.assets)
    video_ae = load_video_ae(assets / VIDEO_AE_FILE)
    audio_ae = load_audio_ae(assets / AUDIO_AE_FILE)
    text_encoder = load_text_encoder(assets / TEXT_FILE)
    cache = Path(args.latents) if args.latents else run_dir / "latents.safetensors"
    print(f"encoding {args.clips} clips (cached in {cache}) ...", flush=True)
    data = load_or_encode(cache, args.clips, args.seed, video_ae, audio_ae, text_encoder, workers=args.workers,
                          progress=lambda i, n: print(f"  {i}/{n}", flush=True) if i % 640 == 0 or i == n else None)
    print(f"data ready in {time.time() - t0:.0f} s: video {list(data['video'].shape[1:])}, "
          f"audio {list(data['audio'].shape[1:])}, text {list(data['text'].shape[1:])}", flush=True)

    cfg = toyav_config(video_ae, audio_ae, text_encoder, **trains["model"])
    torch.manual_seed(args.seed)
    model = DualStreamModel(cfg)
    if args.init:
        from ..checkpoint import load_checkpoint
        start = load_checkpoint(args.init)
        if start.config != cfg:
            raise SystemExit(f"--init {args.init}: its config differs from this command's ({start.config} vs {cfg})")
        model.load_state_dict(start.state_dict())
        print(f"starting from {args.init}", flush=True)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    batches = LatentBatches(data, text_encoder.null(1), args.batch, seed=args.seed)

    trainer, seconds = train_stages(model, batches, run_dir, {"video": args.steps_video, "audio": args.steps_audio,
                                                              "joint": args.steps_joint},
                                    lr=args.lr, seed=args.seed, device=args.device, resume=args.resume,
                                    save_every=args.save_every, keep_checkpoints=args.keep_checkpoints,
                                    overrides=trains["train"], joint=joint)

    minutes = (time.time() - t0) / 60
    meta = {"trained_with": "python -m ccl_core.toyav.train_embedded " + " ".join(argv or sys.argv[1:]),
            **({"init": _init_record(args.init)} if args.init else {}),
            "recipe": json.dumps(trains, sort_keys=True),
            "train_minutes": f"{minutes:.1f}",  # this sitting, data loading included
            # each stage's training over all sittings: what a from-scratch run of this recipe costs
            "stage_minutes": json.dumps({k: round(v / 60, 1) for k, v in seconds.items()}),
            "threads": str(args.threads),
            # its latent spaces, native size, null text and sampling shift, read by CCL Model Loader
            **toyav_metadata(cfg, video_ae, audio_ae, text_encoder)}
    with trainer.ema_weights():
        save_checkpoint(model, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.1f} MB) after {minutes:.1f} min", flush=True)


def _init_record(path: str) -> str:
    """What a fine-tune started from: the file's own training record, so the chain stays readable."""
    from ..checkpoint import read_header
    meta = read_header(path).metadata
    return json.dumps({k: meta[k] for k in ("trained_with", "recipe", "stage_minutes", "init") if k in meta},
                      sort_keys=True)


def add_recipe_arguments(ap: argparse.ArgumentParser, steps_joint: int = 9000, timestep_shift: float = 3.0,
                         lr: float = 1e-3, joint_decay: float = 0.25) -> None:
    """The recipe's command-line options and the shipped model's values (the ablation reuses them)."""
    ap.add_argument("--clips", type=int, default=3000, help="training clips (seeds 0..N-1)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps-video", type=int, default=800)
    ap.add_argument("--steps-audio", type=int, default=500)
    ap.add_argument("--steps-joint", type=int, default=steps_joint)
    ap.add_argument("--lr", type=float, default=lr, help="AdamW learning rate of every stage, after warm-up")
    ap.add_argument("--joint-decay", type=float, default=joint_decay, metavar="FRACTION",
                    help="the joint stage's last FRACTION of steps decays the lr linearly towards 0 (schedule "
                         "wsd); 0 keeps it constant")
    ap.add_argument("--timestep-shift", type=float, default=timestep_shift,
                    help="training noise levels shifted towards pure noise like the sampler's (3 = its default)")
    ap.add_argument("--seed", type=int, default=0)


class _StageProgress:
    """Logs a stage's loss every 50 steps, with the time per step of this sitting (resumes included)."""

    def __init__(self, stage: str, steps: int, log):
        self.stage, self.steps, self.log = stage, steps, log
        self.start, self.first_step = time.time(), None

    def __call__(self, trainer, res) -> None:
        if self.first_step is None:
            self.first_step = res.step - 1
        if res.step % 50 == 0 or res.step == self.steps:
            rate = (time.time() - self.start) / max(1, res.step - self.first_step)
            self.log(f"[{self.stage}] step {res.step}/{self.steps} loss {res.loss:.4f} ({rate:.3f} s/step)")


def stage_train_config(stage: str, n: int, lr: float, seed: int = 0, save_every: Optional[int] = None,
                       keep_checkpoints: int = 2, overrides: Optional[dict] = None, joint: Optional[dict] = None):
    """The TrainConfig of one stage of n steps: the recipe's fields, then overrides (every stage), then
    joint (the joint stage only)."""
    fields = dict(steps=n, lr_fusion=lr, lr_towers=lr, warmup_steps=min(100, n // 10),
                  save_every=save_every or max(100, n // 4), keep_checkpoints=keep_checkpoints,
                  log_every=10, seed=seed, ema_decay=0.999)
    return stage_config(stage, **{**fields, **(overrides or {}), **((joint or {}) if stage == "joint" else {})})


def train_stages(model, batches, run_dir, steps: dict, lr: float = 5e-4, seed: int = 0, device="cpu",
                 resume: bool = False, joint: Optional[dict] = None, save_every: Optional[int] = None,
                 keep_checkpoints: int = 2, log=None, overrides: Optional[dict] = None):
    """The staged recipe: each tower on its unimodal task, then the joint DCR mix (docs/TRAINING.md).

    steps: {"video": n, "audio": n, "joint": n} (a stage with 0 steps is skipped). Each stage is a
    resumable run directory run_dir/stage-NAME. joint: TrainConfig fields overriding the joint
    stage (the ablations change its task mix and route dropout); overrides: fields set in every
    stage (e.g. mixed_precision). Returns the last stage's Trainer and each stage's seconds of
    training over all its sittings ({"video": s, ...}).
    """
    log = log or (lambda message: print(message, flush=True))
    trainer, seconds = None, {}
    for stage in ("video", "audio", "joint"):
        n = int(steps.get(stage, 0))
        if n <= 0:
            continue
        tc = stage_train_config(stage, n, lr, seed=seed, save_every=save_every, keep_checkpoints=keep_checkpoints,
                                overrides=overrides, joint=joint)
        progress = _StageProgress(stage, n, log)
        stage_dir = Path(run_dir) / f"stage-{stage}"
        trainer = train(model, batches, tc, stage_dir, device=device, resume=resume and stage_dir.exists(),
                        callback=progress)
        seconds[stage] = trainer.elapsed
        log(f"[{stage}] done in {time.time() - progress.start:.0f} s ({trainer.elapsed:.0f} s over all sittings)")
    return trainer, seconds


if __name__ == "__main__":
    main()
