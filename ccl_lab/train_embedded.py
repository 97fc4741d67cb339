"""Train the embedded ToyAV model from scratch with the staged CCL recipe, and export it.

    python -m ccl_lab.train_embedded --run-dir runs/toyav

Stages (the paper's recipe; docs/TRAINING.md, "Staged recipe"): the video tower on t2v, the audio tower on t2a,
then everything jointly with the DCR task mix. Each stage is a resumable run directory under
--run-dir; `--resume` continues an interrupted run. The EMA weights of the joint stage are written
to --out (the shipped file by default) with the config and the training command in the metadata.

The shipped model is two commands (scripts/retrain_toyav.sh): the default one, then `--finish --init
THAT_MODEL`, a fine-tune with i2av and extend in the DCR mix on 3000 clips the first never saw
(FINISH; on its own clips a fine-tune overfits them and loses t2av: docs/TOYAV.md).

Clips of several lengths: `--durations 2:0.6,4:0.4` (seconds:weight) trains on the world's 2 s clips
and on 4 s ones, each batch of one length, drawn per batch with those weights (ccl_train.data.DurationBatches).
The default is the world's 2 s alone, the shipped recipe.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch

from ccl_core.assets import ASSETS, AUDIO_AE_FILE, MODEL_FILE, TEXT_FILE, VIDEO_AE_FILE
from ccl_core.checkpoint import save_checkpoint
from ccl_core.jsonconfig import parse_sets
from ccl_core.model import DualStreamModel
from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
from ccl_core.toyav.embedded import SHIFT, toyav_config, toyav_metadata
from ccl_core.toyav.text import load_text_encoder
from ccl_train import stage_config, train
from ccl_train.data import DurationBatches, LatentBatches

from .data import clip_latents, duration_cache, load_or_encode
from .generator import clip_frames
from .world import DURATION_S


# The shipped model's second command, `--finish --init MODEL`: 1500 joint steps with the clean-prefix
# tasks (i2av's first frame, extend's spans) in the DCR mix, on clips 5000-7999 (the first command's are
# 0-2999), at lr 3e-4 with the last 30 % decaying, and the noise levels drawn lower (logit_mean -1: what
# lifts the picture's motion and sync; docs/TOYAV.md, "The finish"). Explicit options override these.
FINISH = {"seed": 5000, "steps_video": 0, "steps_audio": 0, "steps_joint": 1500, "lr": 3e-4, "joint_decay": 0.3,
          "joint_set": ['task_mix={"t2av": 0.3, "i2av": 0.6, "extend": 0.1}', "logit_mean=-1.0"]}


def parse_args(argv=None) -> argparse.Namespace:
    """The command's options, with FINISH's values as the defaults under --finish."""
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.finish:
        ap.set_defaults(**FINISH)
        args = ap.parse_args(argv)
        if args.init is None:
            raise SystemExit("--finish fine-tunes a trained model: name it with --init, e.g. the default "
                             "command's --out (scripts/retrain_toyav.sh runs both)")
    return args


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
    ap.add_argument("--finish", action="store_true",
                    help="the shipped model's second step: fine-tune --init with i2av and extend in the mix on fresh "
                         "clips (the defaults become train_embedded.FINISH's)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a model config field (JSON value), e.g. --set num_layers=6")
    ap.add_argument("--train-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a TrainConfig field in every stage (JSON value), e.g. --train-set timestep_shift=3")
    ap.add_argument("--joint-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a TrainConfig field in the joint stage only, e.g. --joint-set schedule=wsd "
                         "--joint-set decay_steps=2500")
    ap.add_argument("--durations", default=None, metavar="S:W,...",
                    help=f"clip lengths in seconds and their weights, e.g. 2:0.6,4:0.4: each batch is of one length, "
                         f"drawn with these weights (default: the world's {DURATION_S:g} s only)")
    ap.add_argument("--clips-per-duration", default=None, metavar="S:N,...",
                    help=f"clips of the lengths other than {DURATION_S:g} s (whose count is --clips), e.g. 4:1500; "
                         f"default: the footage of --clips, --clips x {DURATION_S:g} / S")
    ap.add_argument("--latents", default=None,
                    help="encoded-data cache (default RUN_DIR/latents.safetensors); the clips of another length "
                         "go beside it (latents-4s.safetensors)")
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
    change of a default cannot hide that the shipped model was trained otherwise. Clips of other
    lengths add "durations" (absent: the world's 2 s only)."""
    plan = duration_plan(args)
    return {**{k: getattr(args, k) for k in RECIPE_FIELDS}, "model": parse_sets(args.set),
            "train": train_overrides(args), "joint": parse_sets(args.joint_set, "--joint-set"),
            **({"durations": plan} if plan else {})}


def _pairs(text: str, option: str, what: str, example: str) -> dict:
    """`S:X,S:X` -> {float S: X text}, in the order given; X may be left out (None)."""
    out = {}
    for item in text.split(","):
        head, sep, tail = item.strip().partition(":")
        try:
            seconds = float(head)
        except ValueError:
            raise SystemExit(f"{option} takes SECONDS:{what} pairs separated by commas, e.g. {example}; "
                             f"{item.strip()!r} does not start with a number of seconds") from None
        if not (math.isfinite(seconds) and seconds > 0):
            raise SystemExit(f"{option}: a clip length must be a number of seconds > 0, got {head.strip()}")
        if seconds in out:
            raise SystemExit(f"{option}: {seconds:g} s is named twice; give each length once")
        out[seconds] = tail.strip() if sep else None
    return out


def duration_plan(args) -> Optional[list]:
    """--durations and --clips-per-duration as [{seconds, weight, clips, first_seed}], or None for
    the world's 2 s alone (the shipped recipe; also `--durations 2`). Checks the syntax and the
    numbers; whether a length is whole latent frames needs the autoencoders (check_durations)."""
    if args.durations is None:
        if args.clips_per_duration is not None:
            raise SystemExit("--clips-per-duration needs --durations (the lengths to train on)")
        return None
    weights = {}
    for seconds, text in _pairs(args.durations, "--durations", "WEIGHT", "2:0.6,4:0.4").items():
        try:
            weight = 1.0 if text is None else float(text)
        except ValueError:
            raise SystemExit(f"--durations: the weight of {seconds:g} s must be a number, got {text!r}") from None
        if not (math.isfinite(weight) and weight > 0):
            raise SystemExit(f"--durations: the weight of {seconds:g} s must be > 0, got {text}; leave out a "
                             f"length not to train on it")
        weights[seconds] = weight
    counts = {}
    given = _pairs(args.clips_per_duration, "--clips-per-duration", "CLIPS", "4:1500") \
        if args.clips_per_duration is not None else {}
    for seconds, text in given.items():
        if seconds not in weights:
            raise SystemExit(f"--clips-per-duration: {seconds:g} s is not one of --durations "
                             f"({', '.join(f'{k:g}' for k in weights)} s)")
        if seconds == DURATION_S:
            raise SystemExit(f"--clips-per-duration: the world's {DURATION_S:g} s clips are counted by --clips")
        try:
            counts[seconds] = int(text)
        except (TypeError, ValueError):
            raise SystemExit(f"--clips-per-duration: the clips of {seconds:g} s must be a whole number, "
                             f"got {text!r}") from None
    if list(weights) == [DURATION_S]:
        return None
    plan = []
    for seconds, weight in weights.items():
        n = args.clips if seconds == DURATION_S else counts.get(seconds, round(args.clips * DURATION_S / seconds))
        if n < args.batch:
            source = ("--clips" if seconds == DURATION_S else f"--clips-per-duration {seconds:g}:{n}"
                      if seconds in counts else f"--clips {args.clips} (the same footage)")
            raise SystemExit(f"{source} gives {n} clips of {seconds:g} s, fewer than a batch (--batch {args.batch}); "
                             f"give more with --clips or --clips-per-duration {seconds:g}:N")
        try:
            seed = first_seed(args.seed, seconds)
        except ValueError as e:
            raise SystemExit(f"--durations: {e}") from None
        plan.append({"seconds": seconds, "weight": weight, "clips": n, "first_seed": seed})
    return plan


def first_seed(seed: int, seconds: float) -> int:
    """The first clip seed of the clips of `seconds`: `seed` for the world's 2 s (the shipped recipe's
    clips), else a block of its own per length (seed + 10^9 x frames), away from the held-out seeds
    (evaluate.HELD_OUT_SEED): a 4 s clip of seed k would begin as the 2 s clip of seed k does."""
    return seed if seconds == DURATION_S else seed + 10**9 * clip_frames(seconds)


def check_durations(plan: Optional[list], video_ae, audio_ae, temporal_patch: int) -> None:
    """Every length of the plan is whole latent video frames (tokens) for these autoencoders."""
    for item in plan or ():
        try:
            clip_latents(item["seconds"], video_ae, audio_ae, temporal_patch)
        except ValueError as e:
            raise SystemExit(f"--durations: {e}") from None


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
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    trains = recipe(args)  # what the metadata records is what the stages get
    try:  # a bad field or value fails here, before the data is encoded
        stage_config("joint", **trains["train"])
    except (TypeError, ValueError) as e:
        raise SystemExit(f"--train-set: {e}; the fields are those of ccl_train.TrainConfig")
    joint = joint_overrides(trains["joint"], args.joint_decay, args.steps_joint)
    try:  # the joint stage's config exactly as train_stages will build it
        stage_train_config("joint", args.steps_joint, args.lr, seed=args.seed, save_every=args.save_every,
                           keep_checkpoints=args.keep_checkpoints, overrides=trains["train"], joint=joint)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"--joint-decay / --joint-set: {e}; the fields are those of ccl_train.TrainConfig")
    t0 = time.time()

    assets = Path(args.assets)
    video_ae = load_video_ae(assets / VIDEO_AE_FILE)
    audio_ae = load_audio_ae(assets / AUDIO_AE_FILE)
    text_encoder = load_text_encoder(assets / TEXT_FILE)
    cfg = toyav_config(video_ae, audio_ae, text_encoder, **trains["model"])
    plan = trains.get("durations")
    check_durations(plan, video_ae, audio_ae, cfg.video_patch[0])
    cache = Path(args.latents) if args.latents else run_dir / "latents.safetensors"
    datasets = {}
    for item in plan or [{"seconds": DURATION_S, "clips": args.clips, "first_seed": args.seed}]:
        seconds, n = item["seconds"], item["clips"]
        where = duration_cache(cache, seconds)
        print(f"encoding {n} clips{'' if plan is None else f' of {seconds:g} s'} (cached in {where}) ...", flush=True)
        data = datasets[seconds] = load_or_encode(
            where, n, item["first_seed"], video_ae, audio_ae, text_encoder, workers=args.workers, seconds=seconds,
            progress=lambda i, n: print(f"  {i}/{n}", flush=True) if i % 640 == 0 or i == n else None)
        print(f"data ready in {time.time() - t0:.0f} s: video {list(data['video'].shape[1:])}, "
              f"audio {list(data['audio'].shape[1:])}, text {list(data['text'].shape[1:])}", flush=True)

    torch.manual_seed(args.seed)
    model = DualStreamModel(cfg)
    if args.init:
        from ccl_core.checkpoint import load_checkpoint
        start = load_checkpoint(args.init)
        if start.config.self_attn_window is None and replace(start.config, self_attn_window=cfg.self_attn_window) == cfg:
            # written before self-attention windows: the same model on the 2 s clips it was trained on
            print(f"--init {args.init} has no self_attn_window (written before windows): fine-tuning with this "
                  f"command's, {cfg.self_attn_window} latent frames", flush=True)
        elif start.config != cfg:
            raise SystemExit(f"--init {args.init}: its config differs from this command's ({start.config} vs {cfg})")
        model.load_state_dict(start.state_dict())
        print(f"starting from {args.init}", flush=True)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    if plan is None:
        batches = LatentBatches(datasets[DURATION_S], text_encoder.null(1), args.batch, seed=args.seed)
    else:
        batches = DurationBatches(datasets, {item["seconds"]: item["weight"] for item in plan}, text_encoder.null(1),
                                  args.batch, seed=args.seed)

    trainer, seconds = train_stages(model, batches, run_dir, {"video": args.steps_video, "audio": args.steps_audio,
                                                              "joint": args.steps_joint},
                                    lr=args.lr, seed=args.seed, device=args.device, resume=args.resume,
                                    save_every=args.save_every, keep_checkpoints=args.keep_checkpoints,
                                    overrides=trains["train"], joint=joint)

    minutes = (time.time() - t0) / 60
    meta = {"trained_with": "python -m ccl_lab.train_embedded " + shlex.join(sys.argv[1:] if argv is None else argv),
            **({"init": _init_record(args.init)} if args.init else {}),
            "recipe": json.dumps(trains, sort_keys=True),
            "train_minutes": f"{minutes:.1f}",  # this sitting, data loading included
            # each stage's training over all sittings: what a from-scratch run of this recipe costs
            "stage_minutes": json.dumps({k: round(v / 60, 1) for k, v in seconds.items()}),
            "threads": str(args.threads),
            # its latent spaces, native size, null text and sampling shift (the shift it was trained at), read
            # by CCL Model Loader
            **toyav_metadata(cfg, video_ae, audio_ae, text_encoder, shift=trains["train"]["timestep_shift"])}
    with trainer.ema_weights():
        save_checkpoint(model, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.1f} MB) after {minutes:.1f} min", flush=True)


def _init_record(path: str) -> str:
    """What a fine-tune started from: the file's own training record, so the chain stays readable."""
    from ccl_core.checkpoint import read_header
    meta = read_header(path).metadata
    return json.dumps({k: meta[k] for k in ("trained_with", "recipe", "stage_minutes", "init") if k in meta},
                      sort_keys=True)


def add_recipe_arguments(ap: argparse.ArgumentParser, steps_joint: int = 9000, timestep_shift: float = SHIFT,
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
