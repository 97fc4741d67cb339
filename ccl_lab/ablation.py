"""The paper's claims, measured on ToyAV: six training variants and four guidance forms, one recipe.

    python -m ccl_lab.ablation --run-dir runs/ablation                       # 2-core CPU, ~2 h
    python -m ccl_lab.ablation --run-dir runs/ablation --device cuda --jobs 6  # one GPU

The towers are pretrained once, as the embedded recipe does (train_embedded.train_stages: the video
tower on t2v, then the audio tower on t2a), with no cross-modal path at all. Every variant then
starts its joint DCR stage from those towers with its own freshly initialised fusion (the same seed
for all), and trains on the same 3000 clips for the same number of steps. This is the paper's
setting, where all variants start from the same unimodal models, and no variant's fusion shapes the
shared start. Nothing is tuned per variant.

Variants (what they test):
  gated            the baseline the paper argues against: a zero-initialised scalar gate on plain
                   cross-attention, no context tokens, no partitioning (claim 2);
  ccl              full CCL: aligned RoPE, TARP partitions, context tokens, DCR (the shipped recipe);
  no_partition     CCL with full cross-modal attention instead of TARP partitions (claim 1);
  no_aligned_rope  CCL with the audio RoPE on its own index instead of the video time axis (claim 1);
  no_ctx           CCL without learnable context tokens (claim 2);
  no_dcr           CCL trained on the joint task only, without route dropout (claim 2).
Guidance (claim 3): the UCG joint form on every variant; on full CCL also plain CFG with a
null-text unconditional branch, the UCG decoupled form and Ovi-style guidance.

Each row is scored over the 36 prompts x 4 seeds with ccl_lab.metrics; a convergence curve
scores `--curve` variants at every `--curve-every` joint steps. Because the generated picture limits
what the t2av metrics can show, each variant is also measured on what one stream takes from the
other: the validation loss of every task on 256 held-out clips, with the same noise levels and
noise for every task and variant (t2a -> v2a is the audio's gain from seeing the video), and the
sync of v2a on 36 held-out videos. Writes RUN_DIR/report/: results.json, table.csv, table.md,
crossmodal.csv, joint_loss.csv, joint_loss.svg (or --report-dir). `--train-minutes` bounds the
training wall time: the variants still running are stopped and all are scored at the last joint step
that every variant reached (the constant learning rate makes that equal to a run of exactly that
length). `--skip-score` trains only; `--skip-train` scores what is there.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ccl_core.guidance import Guidance
from ccl_core.toyav.embedded import GUIDANCE as EMBEDDED_GUIDANCE

from .metrics import SUMMARY_KEYS, summarize_by_seed
from .train_embedded import add_recipe_arguments, joint_overrides, train_stages
from .world import PROMPTS



@dataclass(frozen=True)
class Variant:
    what: str
    model: Dict = field(default_factory=dict)  # ModelConfig overrides of toyav_config()
    joint: Dict = field(default_factory=dict)  # TrainConfig overrides of the joint stage


VARIANTS: Dict[str, Variant] = {
    "gated": Variant("gated fusion baseline (zero-init gate, no context tokens, no partitions)",
                     model=dict(fusion="gated", n_ctx=0, tarp_window=None)),
    "ccl": Variant("full CCL (aligned RoPE + TARP partitions + context tokens + DCR)"),
    "no_partition": Variant("CCL without TARP partitions (full cross-modal attention)", model=dict(tarp_window=None)),
    "no_aligned_rope": Variant("CCL without aligned RoPE (audio RoPE on its own index)", model=dict(aligned_rope=False)),
    "no_ctx": Variant("CCL without context tokens", model=dict(n_ctx=0)),
    "no_dcr": Variant("CCL without dynamic routing (t2av only, no route dropout)",
                      joint=dict(task_mix={"t2av": 1.0}, p_ctx_only=0.0)),
}

# The guidance forms compared, at the generator's default scales. Ovi-style skips one block in its
# negative branch: Ovi skips block 11 of 30; the 4-block ToyAV model skips block 1.
GUIDANCE: Dict[str, Guidance] = {
    "ucg_joint": EMBEDDED_GUIDANCE,
    "cfg": replace(EMBEDDED_GUIDANCE, form="cfg"),
    "ucg_decoupled": replace(EMBEDDED_GUIDANCE, form="decoupled"),
    "ovi": replace(EMBEDDED_GUIDANCE, form="ovi", skip_block=1),
}
ROWS = [(v, "ucg_joint") for v in VARIANTS] + [("ccl", "cfg"), ("ccl", "ucg_decoupled"), ("ccl", "ovi")]
# The study's budget: the shipped recipe's tower stages (shared by all variants) and a joint stage
# that keeps the whole study within about two hours on a 2-core CPU (docs/ABLATIONS.md).
JOINT_STEPS = 1500


# ---------------------------------------------------------------------- training
TOWERS = "towers"  # run_dir/towers: the unimodal towers every variant starts from
TOWERS_FILE = "towers.safetensors"
# The towers pretrain without any cross-modal path: with gated fusion and no context tokens, t2v and
# t2a read nothing from the other side, so no variant's fusion design shapes the shared start.
TOWER_MODEL = dict(fusion="gated", n_ctx=0, tarp_window=None)


def _setup(args):
    """The shared data, batches and encoders of a worker process."""
    from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
    from ccl_core.toyav.text import load_text_encoder
    from ccl_train.data import LatentBatches
    from .data import load_or_encode

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    video_ae, audio_ae, text_encoder = load_video_ae(), load_audio_ae(), load_text_encoder()
    data = load_or_encode(Path(args.run_dir) / "latents.safetensors", args.clips, args.seed, video_ae, audio_ae,
                          text_encoder)
    if args.device != "cpu":
        data = {k: v.to(args.device) for k, v in data.items()}
    batches = LatentBatches(data, text_encoder.null(1).to(data["text"].device), args.batch, seed=args.seed)
    return (video_ae, audio_ae, text_encoder), batches


def _file_log(path: Path, prefix: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(path, "a")
    return lambda message: print(f"[{prefix}] {message}", file=log_file, flush=True)


def tower_names(model) -> List[str]:
    """Parameters of the two towers proper: everything but the cross-modal fusion (model.param_groups)."""
    fusion = {id(p) for p in model.param_groups()[0]}
    return [n for n, p in model.named_parameters() if id(p) not in fusion]


def pretrain_towers(run_dir: Path, args) -> None:
    """The video tower on t2v, then the audio tower on t2a, once for all variants (resumable)."""
    from safetensors.torch import save_file

    from ccl_core.model import DualStreamModel
    from ccl_core.toyav.embedded import toyav_config

    encoders, batches = _setup(args)
    torch.manual_seed(args.seed)
    model = DualStreamModel(toyav_config(*encoders, **TOWER_MODEL))
    log = _file_log(run_dir / TOWERS / "train.log", TOWERS)
    train_stages(model, batches, run_dir / TOWERS, {"video": args.steps_video, "audio": args.steps_audio},
                 lr=args.lr, seed=args.seed, device=args.device, resume=True, keep_checkpoints=1, log=log,
                 overrides=_train_overrides(args))
    state = model.state_dict()
    save_file({n: state[n].detach().cpu().contiguous() for n in tower_names(model)},
              str(run_dir / TOWERS / TOWERS_FILE), metadata={"steps_video": str(args.steps_video),
                                                             "steps_audio": str(args.steps_audio)})


def load_towers(model, path: Path) -> None:
    """Copy the pretrained towers into a variant's model; its fusion keeps its fresh initialisation."""
    from safetensors.torch import load_file

    towers, names = load_file(str(path)), tower_names(model)
    missing, extra = sorted(set(names) - set(towers)), sorted(set(towers) - set(names))
    if missing or extra:
        raise ValueError(f"{path} does not hold this variant's towers: missing {missing[:5]}, unexpected {extra[:5]}")
    state = model.state_dict()
    for n in names:
        state[n].copy_(towers[n])


def train_variant(name: str, run_dir: Path, args) -> None:
    """One variant's joint stage from the shared towers (runs in its own process; resumable)."""
    from ccl_core.model import DualStreamModel
    from ccl_core.toyav.embedded import toyav_config

    if name == TOWERS:
        return pretrain_towers(run_dir, args)
    variant = VARIANTS[name]
    encoders, batches = _setup(args)
    torch.manual_seed(args.seed)  # the same fresh fusion in every variant where the shapes agree
    model = DualStreamModel(toyav_config(*encoders, **variant.model))
    load_towers(model, run_dir / TOWERS / TOWERS_FILE)
    log = _file_log(run_dir / name / "train.log", name)
    log(f"{variant.what}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters on {args.device}")
    train_stages(model, batches, run_dir / name, {"joint": args.steps_joint},
                 lr=args.lr, seed=args.seed, device=args.device, resume=True,
                 joint=joint_overrides(variant.joint, args.joint_decay, args.steps_joint),
                 save_every=args.save_every, keep_checkpoints=0, log=log, overrides=_train_overrides(args))


def _train_overrides(args) -> dict:
    """What every stage of the study sets: float32 (TF32 matmuls on a GPU) as on the CPU, and its noise levels."""
    return dict(mixed_precision="no", timestep_shift=args.timestep_shift)


def joint_checkpoints(run_dir: Path, name: str) -> Dict[int, Path]:
    """Saved joint-stage checkpoints of a variant: step -> folder."""
    from ccl_train.rundir import checkpoints
    return {step: Path(path) for step, path in checkpoints(str(run_dir / name / "stage-joint"))}


def train_all(run_dir: Path, names: List[str], args) -> Dict[str, object]:
    """Pretrain the shared towers, then train the variants `args.jobs` at a time, each in its own
    process; stop at the deadline."""
    from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
    from ccl_core.toyav.text import load_text_encoder
    from .data import load_or_encode

    start = time.time()
    load_or_encode(run_dir / "latents.safetensors", args.clips, args.seed, load_video_ae(device=args.device),
                   load_audio_ae(device=args.device), load_text_encoder(device=args.device), workers=args.data_workers)
    print(f"data ready in {time.time() - start:.0f} s", flush=True)
    deadline = start + args.train_minutes * 60 if args.train_minutes else math.inf
    # the towers alone get every thread the variants will share
    tower_threads = args.threads if args.device != "cpu" else min(os.cpu_count() or 1, args.threads * args.jobs)
    phases = [([TOWERS], 1, tower_threads), (list(names), args.jobs, args.threads)]
    failed, stopped = [], []
    for pending, jobs, threads in phases:
        running = {}
        while pending or running:
            while pending and len(running) < jobs:
                name = pending.pop(0)
                (run_dir / name).mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, "-m", "ccl_lab.ablation", "--worker", name] + _worker_args(args, threads)
                running[name] = subprocess.Popen(cmd, stdout=open(run_dir / name / "worker.out", "a"),
                                                 stderr=subprocess.STDOUT)
            time.sleep(2)
            for name, proc in list(running.items()):
                if proc.poll() is not None:
                    del running[name]
                    if proc.returncode:
                        failed.append(name)
                        tail = (run_dir / name / "worker.out").read_text().splitlines()[-15:]
                        print(f"{name} failed (exit {proc.returncode}); the end of {run_dir / name / 'worker.out'}:\n"
                              + "\n".join(tail), flush=True)
                    else:
                        print(f"{name} done after {time.time() - start:.0f} s", flush=True)
            if time.time() > deadline and (running or pending):
                for name, proc in running.items():
                    proc.terminate()
                    proc.wait()
                    stopped.append(name)
                print(f"deadline: stopped {sorted(running)} and skipped {pending} after {time.time() - start:.0f} s",
                      flush=True)
                stopped += pending
                running, pending = {}, []
        if TOWERS in failed + stopped:
            stopped += [n for n in names if n not in stopped]  # nothing to start the variants from
            break
    return {"train_wall_s": round(time.time() - start, 1), "stopped_by_deadline": stopped, "failed": failed}


def _worker_args(args, threads: int) -> List[str]:
    out = ["--threads", str(threads)]
    for key in ("run_dir", "device", "clips", "batch", "steps_video", "steps_audio", "steps_joint", "lr",
                "timestep_shift", "seed", "save_every"):
        out += ["--" + key.replace("_", "-"), str(getattr(args, key))]
    return out


# ---------------------------------------------------------------------- scoring
def _score_chunk(job):
    from .metrics import score_clip
    frames, waves, fps, sample_rate, prompts = job
    return [score_clip(f, fps, w, sample_rate, p) for f, w, p in zip(frames, waves, prompts)]


class Scorer:
    """Generates with one checkpoint on the device and scores the clips in worker processes."""

    def __init__(self, args, pool, heldout=None):
        self.args, self.pool, self.heldout = args, pool, heldout

    def evaluate(self, checkpoint: Path, guidance_rows: List[str]) -> Dict[str, dict]:
        """ToyAV scores of t2av over the 36 prompts x eval_seeds, per guidance form."""
        from ccl_core.generate import generate_many
        from ccl_core.toyav.embedded import load_pipeline

        pipe = load_pipeline(str(checkpoint / "ema.safetensors"), device=self.args.device)
        out = {}
        for g in guidance_rows:
            parts = []  # per seed: its scores, or their future when a pool scores them
            for seed in range(self.args.eval_seeds):
                results = generate_many(pipe, PROMPTS, [seed] * len(PROMPTS), steps=self.args.eval_steps,
                                        guidance=GUIDANCE[g])
                job = ([r.frames.numpy() for r in results], [r.waveform.numpy() for r in results],
                       results[0].fps, results[0].sample_rate, list(PROMPTS))
                parts.append(self.pool.submit(_score_chunk, job) if self.pool else _score_chunk(job))
            out[g] = summarize_by_seed([p.result() for p in parts] if self.pool else parts)
        return out

    def crossmodal(self, checkpoint: Path) -> dict:
        """What each stream takes from the other, independent of picture quality: the validation loss
        of every task on held-out clips (same draws for all), and v2a sync on held-out videos."""
        from ccl_core.toyav.embedded import load_pipeline
        from ccl_train import stage_config
        from ccl_train.validation import validation_losses
        from .evaluate import conditioned_scores
        from .metrics import aggregate

        pipe = load_pipeline(str(checkpoint / "ema.safetensors"), device=self.args.device)
        losses = validation_losses(pipe.model, self.heldout, stage_config("joint"), seed=self.args.seed)
        v2a = aggregate(conditioned_scores(pipe, "v2a", self.args.cond_clips, steps=self.args.eval_steps,
                                           guidance=GUIDANCE["ucg_joint"]))
        return {"validation_loss": losses,
                "v2a": {k: v for k, v in v2a.items() if not isinstance(v, (list, dict))}}


def heldout_latents(run_dir: Path, n: int, device: str) -> Dict[str, torch.Tensor]:
    """n held-out clips (seeds the training never draws), encoded once and cached in run_dir."""
    from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
    from ccl_core.toyav.text import load_text_encoder
    from .data import load_or_encode
    from .evaluate import HELD_OUT_SEED

    return load_or_encode(run_dir / "heldout.safetensors", n, HELD_OUT_SEED, load_video_ae(device=device),
                          load_audio_ae(device=device), load_text_encoder(device=device))


# ---------------------------------------------------------------------- report
def joint_loss(run_dir: Path, name: str, task: str = "t2av") -> List[tuple]:
    """(step, smoothed video + audio loss of `task`) from a variant's joint-stage loss log."""
    path = run_dir / name / "stage-joint" / "losses.csv"
    if not path.is_file():
        return []
    per_step: Dict[int, Dict[str, float]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            if row["task"] == task:
                per_step.setdefault(int(row["step"]), {})[row["stream"]] = float(row["smoothed"])
    return [(s, v["video"] + v["audio"]) for s, v in sorted(per_step.items()) if {"video", "audio"} <= set(v)]


def loss_svg(curves: Dict[str, List[tuple]], title: str, bold=("gated", "ccl")) -> str:
    """A dependency-free SVG line plot of loss curves against steps."""
    width, height, left, right, top, bottom = 720, 420, 60, 190, 30, 45
    curves = {name: curve for name, curve in curves.items() if curve}
    pts = [p for c in curves.values() for p in c]
    if not pts:
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    x0, x1 = 0, max(p[0] for p in pts)
    ys = sorted(p[1] for p in pts)
    y0, y1 = ys[0] * 0.95, ys[int(0.98 * (len(ys) - 1))] * 1.05  # the warm-up spike would flatten the rest
    sx = lambda x: left + (width - left - right) * (x - x0) / max(1, x1 - x0)
    sy = lambda y: top + (height - top - bottom) * (1 - (min(y, y1) - y0) / max(1e-9, y1 - y0))
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' "
           f"font-size='12'>", f"<rect width='{width}' height='{height}' fill='white'/>",
           f"<text x='{left}' y='18' font-size='14'>{title}</text>"]
    for y in _ticks(y0, y1):
        out.append(f"<line x1='{left}' x2='{width - right}' y1='{sy(y):.1f}' y2='{sy(y):.1f}' stroke='#ddd'/>"
                   f"<text x='{left - 6}' y='{sy(y) + 4:.1f}' text-anchor='end'>{y:g}</text>")
    for x in _ticks(x0, x1):
        out.append(f"<text x='{sx(x):.1f}' y='{height - bottom + 16}' text-anchor='middle'>{x:g}</text>")
    out.append(f"<text x='{(left + width - right) / 2}' y='{height - 8}' text-anchor='middle'>joint-stage step</text>")
    for i, (name, curve) in enumerate(curves.items()):
        colour, w = colours[i % len(colours)], 2.5 if name in bold else 1.2
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in curve)
        out.append(f"<polyline fill='none' stroke='{colour}' stroke-width='{w}' points='{path}'/>")
        ly = top + 18 * i + 10
        out.append(f"<line x1='{width - right + 12}' x2='{width - right + 36}' y1='{ly}' y2='{ly}' "
                   f"stroke='{colour}' stroke-width='{w}'/><text x='{width - right + 42}' y='{ly + 4}'>{name}</text>")
    out.append("</svg>")
    return "\n".join(out)


def _ticks(lo: float, hi: float, n: int = 5) -> List[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    raw = (hi - lo) / n if hi > lo else 1.0
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    first = math.ceil(lo / step) * step
    if first > hi:
        return [lo]
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


def write_report(run_dir: Path, results: dict, report: Optional[Path] = None) -> Path:
    report = Path(report or run_dir / "report")
    report.mkdir(parents=True, exist_ok=True)
    (report / "results.json").write_text(json.dumps(results, indent=1))
    header = ["variant", "guidance"] + [m for k in SUMMARY_KEYS for m in (k, k + "_spread")]
    lines = []
    with open(report / "table.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in results["rows"]:
            a, s = row["scores"]["all"], row["scores"]["spread_across_seeds"]
            writer.writerow([row["variant"], row["guidance"]] + [x for k in SUMMARY_KEYS for x in (a[k], s[k])])
            lines.append(f"| {row['variant']} | {row['guidance']} | " + " | ".join(
                f"{a[k]:.0f} ({s[k]:.0f})" if k == "median_offset_ms" else f"{a[k]:.2f} ({s[k]:.2f})"
                for k in SUMMARY_KEYS) + " |")
    md = ["| variant | guidance | median offset ms | recall | precision | colour | pitch | motion |",
          "|---|---|---|---|---|---|---|---|"] + lines
    if results.get("curve"):
        md += ["", "| variant | joint step | median offset ms | recall | precision | colour | pitch | motion |",
               "|---|---|---|---|---|---|---|---|"]
        for c in results["curve"]:
            a = c["scores"]["all"]
            md.append(f"| {c['variant']} | {c['step']} | {a['median_offset_ms']:.0f} | " +
                      " | ".join(f"{a[k]:.2f}" for k in SUMMARY_KEYS[1:]) + " |")
    if results.get("crossmodal"):
        md += ["", *crossmodal_table(results["crossmodal"], report / "crossmodal.csv")]
    (report / "table.md").write_text("\n".join(md) + "\n")
    curves = {name: joint_loss(run_dir, name) for name in results["variants"]}
    with open(report / "joint_loss.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "step", "t2av_loss_ema"])
        for name, curve in curves.items():
            writer.writerows([name, s, round(v, 6)] for s, v in curve)
    (report / "joint_loss.svg").write_text(loss_svg(curves, "t2av training loss (EMA, video + audio) in the joint stage"))
    return report


CROSSMODAL_LOSSES = [("t2v", "video"), ("a2v", "video"), ("t2a", "audio"), ("v2a", "audio"), ("t2av", "video"),
                     ("t2av", "audio")]
V2A_KEYS = ["median_offset_ms", "recall", "precision"]


def crossmodal_table(crossmodal: Dict[str, dict], csv_path: Path) -> List[str]:
    """Write crossmodal.csv; return its markdown: validation losses, the gain from the other stream, v2a sync."""
    header = ["variant"] + [f"{task}_{stream}_loss" for task, stream in CROSSMODAL_LOSSES] + ["v2a_" + k for k in V2A_KEYS]
    md = ["| variant | video loss t2v -> a2v (gain) | audio loss t2a -> v2a (gain) | t2av video / audio loss "
          "| v2a median offset ms | v2a recall | v2a precision |", "|---|---|---|---|---|---|---|"]
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for name, c in crossmodal.items():
            loss = lambda task, stream: c["validation_loss"][task][stream]
            writer.writerow([name] + [round(loss(t, s), 6) for t, s in CROSSMODAL_LOSSES] +
                            [c["v2a"][k] for k in V2A_KEYS])
            pair = lambda a, b, s: f"{loss(a, s):.4f} -> {loss(b, s):.4f} ({loss(a, s) - loss(b, s):+.4f})"
            md.append(f"| {name} | {pair('t2v', 'a2v', 'video')} | {pair('t2a', 'v2a', 'audio')} | "
                      f"{loss('t2av', 'video'):.4f} / {loss('t2av', 'audio'):.4f} | {c['v2a']['median_offset_ms']:.0f} | "
                      f"{c['v2a']['recall']:.2f} | {c['v2a']['precision']:.2f} |")
    return md


# ---------------------------------------------------------------------- command line
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", default="runs/ablation")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=2, help="variants trained at the same time")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per job (scoring uses threads x jobs)")
    # The shipped recipe with a shorter joint stage, at the noise levels and learning rate the study
    # was run with (before the shipped recipe took the sampler's shift and lr 1e-3;
    # --timestep-shift 3 --lr 1e-3 match it).
    add_recipe_arguments(ap, steps_joint=JOINT_STEPS, timestep_shift=1.0, lr=5e-4, joint_decay=0.0)
    ap.add_argument("--save-every", type=int, default=500, help="joint checkpoint interval (the curve's resolution)")
    ap.add_argument("--train-minutes", type=float, default=None, help="stop training after this wall time")
    ap.add_argument("--data-workers", type=int, default=0, help="processes drawing the training clips")
    ap.add_argument("--eval-seeds", type=int, default=4)
    ap.add_argument("--eval-steps", type=int, default=25)
    ap.add_argument("--cond-clips", type=int, default=36, help="held-out videos for the v2a sync of each variant")
    ap.add_argument("--heldout-clips", type=int, default=256, help="held-out clips for the validation losses")
    ap.add_argument("--score-workers", type=int, default=0, help="processes scoring clips (0: in this process)")
    ap.add_argument("--curve", default="gated,ccl", help="variants scored along training (see --curve-every)")
    ap.add_argument("--curve-every", type=int, default=500, help="joint steps between the curve's points")
    ap.add_argument("--report-dir", default=None, help="where the report goes (default RUN_DIR/report)")
    ap.add_argument("--skip-train", action="store_true", help="score the checkpoints already in --run-dir")
    ap.add_argument("--skip-score", action="store_true", help="train only (score later with --skip-train)")
    ap.add_argument("--commit", default="", help="the commit being measured, recorded in the report")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    if args.worker:
        return train_variant(args.worker, run_dir, args)

    names = [n for n in args.variants.split(",") if n]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(os.cpu_count() or 1, args.threads * args.jobs))
    t0 = time.time()
    results = {"command": "python -m ccl_lab.ablation " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
               "commit": args.commit, "torch": torch.__version__, "device": _device_name(args.device),
               "variants": {n: VARIANTS[n].what for n in names},
               "guidance": {g: vars(GUIDANCE[g]) for g in GUIDANCE},
               "recipe": {k: getattr(args, k) for k in ("clips", "batch", "steps_video", "steps_audio",
                                                         "steps_joint", "lr", "seed", "eval_seeds", "eval_steps")}}
    if args.skip_train and (run_dir / "train.json").is_file():  # a --skip-score run trained these
        results["training"] = json.loads((run_dir / "train.json").read_text())
    if not args.skip_train:
        results.update(train_all(run_dir, names, args))
        names = [n for n in names if n not in results["failed"]]
        if args.skip_score:
            (run_dir / "train.json").write_text(json.dumps(results, indent=1))
            print(f"trained in {results['train_wall_s'] / 60:.1f} min; score with --skip-train", flush=True)
            return

    saved = {n: joint_checkpoints(run_dir, n) for n in names}
    reached = {n: max(saved[n], default=0) for n in names}
    results["not_scored"] = [n for n, s in reached.items() if not s]  # no joint checkpoint yet
    names = [n for n in names if reached[n]]
    if not names:
        raise SystemExit(f"no variant has a joint-stage checkpoint in {run_dir}: nothing to score")
    step = min(reached[n] for n in names)
    results["joint_steps_scored"] = step
    print(f"scoring at joint step {step} (reached: {reached})", flush=True)

    pool = None
    if args.score_workers:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        pool = ProcessPoolExecutor(args.score_workers, mp_context=multiprocessing.get_context("spawn"))
    scorer = Scorer(args, pool, heldout_latents(run_dir, args.heldout_clips, args.device))
    t_eval = time.time()
    results["rows"] = []
    for name in names:
        wanted = [g for v, g in ROWS if v == name]
        for g, scores in scorer.evaluate(saved[name][step], wanted).items():
            results["rows"].append({"variant": name, "guidance": g, "step": step, "scores": scores})
            print(f"{name:16s} {g:14s} {json.dumps(scores['all'])}", flush=True)
        write_report(run_dir, results, args.report_dir)  # as it goes: an interrupted study keeps its rows
    results["crossmodal"] = {}
    for name in names:
        results["crossmodal"][name] = scorer.crossmodal(saved[name][step])
        print(f"{name:16s} cross-modal {json.dumps(results['crossmodal'][name])}", flush=True)
        write_report(run_dir, results, args.report_dir)
    results["curve"] = []
    for name in [n for n in args.curve.split(",") if n in names]:
        for s, path in sorted(saved[name].items()):
            if s == step:  # the table's own row: the same checkpoint, guidance and seeds
                scores = next(r["scores"] for r in results["rows"]
                              if (r["variant"], r["guidance"]) == (name, "ucg_joint"))
            elif s < step and s % args.curve_every == 0:
                scores = scorer.evaluate(path, ["ucg_joint"])["ucg_joint"]
            else:
                continue
            results["curve"].append({"variant": name, "step": s, "scores": scores})
            print(f"curve {name} {s}: {json.dumps(scores['all'])}", flush=True)
        write_report(run_dir, results, args.report_dir)
    if pool is not None:
        pool.shutdown()
    results["eval_wall_s"] = round(time.time() - t_eval, 1)
    results["total_wall_s"] = round(time.time() - t0, 1)
    report = write_report(run_dir, results, args.report_dir)
    if results.get("failed") or results["not_scored"]:
        raise SystemExit(f"variants failed: {results.get('failed')}, not scored: {results['not_scored']}; "
                         f"report of the rest: {report}")
    print(f"wrote {report} after {results['total_wall_s'] / 60:.1f} min", flush=True)


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({os.cpu_count()} cores visible)"


if __name__ == "__main__":
    main()
