"""Recipe variants of the embedded ToyAV model, trained side by side for a fixed time and scored alike.

    python tools/recipe_sweep.py --out runs/sweep --device cuda --minutes 7.5 --workers 14 \
        --variant shipped= --variant shift1="--timestep-shift 1" --variant lr1e-3="--lr 1e-3"

Why: retraining the shipped model takes most of 3 hours on the 2-core CPU, so a change of recipe is
first compared on a GPU (or overnight on the CPU). The data is encoded once; every variant then runs
`python -m ccl_lab.train_embedded` with its own options in its own process, all at once,
until the time is up. Each joint checkpoint's EMA weights are kept, and every variant is scored at
the last joint step that all of them reached, with the benchmark's t2av scoring (36 prompts per
seed, default sampler settings). Writes OUT/sweep.json and copies the scored weights to OUT.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def encode(latents: Path, clips: int, device: str, workers: int) -> None:
    from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
    from ccl_core.toyav.text import load_text_encoder
    from ccl_lab.data import load_or_encode

    load_or_encode(latents, clips, 0, load_video_ae(device=device), load_audio_ae(device=device),
                   load_text_encoder(device=device), workers=workers)


def joint_steps(run_dir: Path) -> set:
    """Joint steps with a complete checkpoint (one a killed save left half-written does not count)."""
    from ccl_train.rundir import checkpoints

    return {step for step, _ in checkpoints(str(run_dir / "stage-joint"))}


def score(weights: Path, seeds: int, device: str) -> dict:
    from ccl_core.toyav.embedded import load_pipeline
    from ccl_lab.evaluate import t2av_scores
    from ccl_lab.metrics import summarize_by_seed

    pipe = load_pipeline(str(weights), device=device)
    summary = summarize_by_seed([t2av_scores(pipe, seed) for seed in range(seeds)])
    return {"all": summary["all"], "spread_across_seeds": summary["spread_across_seeds"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the run directories, sweep.json and the scored weights")
    ap.add_argument("--variant", action="append", required=True, metavar="NAME=OPTIONS",
                    help="train_embedded options of one variant (NAME= alone is the shipped recipe)")
    ap.add_argument("--minutes", type=float, required=True, help="training time for all variants together")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per variant")
    ap.add_argument("--clips", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=0, help="processes drawing clips while encoding")
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=4, help="noise seeds of the 36 prompts scored per variant")
    ap.add_argument("--copy-to", default=None, help="also copy each scored EMA file here (e.g. $OUT)")
    args = ap.parse_args(argv)

    variants = dict(v.split("=", 1) if "=" in v else (v, "") for v in args.variant)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.copy_to:
        Path(args.copy_to).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    latents = out / "latents.safetensors"
    encode(latents, args.clips, args.device, args.workers)
    print(f"data encoded in {time.time() - t0:.0f} s", flush=True)

    deadline = time.time() + 60 * args.minutes
    procs = {}
    for name, options in variants.items():
        cmd = [sys.executable, "-m", "ccl_lab.train_embedded", "--run-dir", str(out / name),
               "--latents", str(latents), "--clips", str(args.clips), "--out", str(out / f"{name}-final.safetensors"),
               "--device", args.device, "--threads", str(args.threads), "--save-every", str(args.save_every),
               "--keep-checkpoints", "0"] + shlex.split(options)
        log = open(out / f"{name}.log", "a")
        procs[name] = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    while any(p.poll() is None for p in procs.values()) and time.time() < deadline:
        time.sleep(5)
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    for p in procs.values():
        p.wait()
    trained = time.time() - t0

    common = set.intersection(*(joint_steps(out / name) for name in variants))
    if not common:
        raise SystemExit("no joint checkpoint common to all variants: give more --minutes or a smaller --save-every")
    step = max(common)
    print(f"trained for {trained / 60:.1f} min; scoring every variant at joint step {step}", flush=True)
    results = {"joint_step": step, "train_minutes": round(args.minutes, 2), "device": args.device,
               "variants": {}}
    weights = {name: out / name / "stage-joint" / "checkpoints" / f"step-{step:08d}" / "ema.safetensors"
               for name in variants}
    if args.copy_to:  # before scoring, so that the weights are there even if scoring is cut short
        for name, path in weights.items():
            shutil.copy(path, Path(args.copy_to) / f"{name}-{step}.safetensors")
    for name, options in variants.items():
        results["variants"][name] = {"options": options, **score(weights[name], args.seeds, args.device)}
        print(name, json.dumps(results["variants"][name]["all"]), flush=True)
    (out / "sweep.json").write_text(json.dumps(results, indent=2))
    if args.copy_to:
        shutil.copy(out / "sweep.json", Path(args.copy_to) / "sweep.json")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
