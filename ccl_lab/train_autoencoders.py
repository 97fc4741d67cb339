"""Train the ToyAV video and audio autoencoders from scratch and write the shipped files.

    python -m ccl_lab.train_autoencoders --out ccl_core/assets/

writes toyav_video_ae.safetensors, toyav_audio_ae.safetensors and toyav_text.safetensors, and
prints the held-out metrics (also stored in each autoencoder's metadata). Everything is
determined by --seed (and, for bit-identical weights, the same torch build and thread count).

Training clips use seeds derived from (--seed, i) by numpy's SeedSequence, which are below 2**32;
held-out clips use seeds HELDOUT_SEED_BASE + i = 2**32 + i, so they can never be training clips.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ccl_core.assets import AUDIO_AE_FILE, TEXT_FILE, VIDEO_AE_FILE
from ccl_core.toyav.autoencoders import (AudioAE, AudioAEConfig, VideoAE, VideoAEConfig, count_parameters,
                                         save_autoencoder)
from ccl_core.toyav.text import ToyAVTextEncoder, save_text_encoder

from . import metrics as m
from . import world as w
from .generator import generate_clip

HELDOUT_SEED_BASE = 2 ** 32


def training_seeds(seed: int, n: int) -> list[int]:
    return [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(n)]


def heldout_seeds(n: int, start: int = 0) -> list[int]:
    return [HELDOUT_SEED_BASE + start + i for i in range(n)]


def make_pool(seeds) -> dict:
    """Frames as uint8 [N, 32, 64, 64, 3] (to keep the pool small), waveforms [N, 32000], pitches [N]."""
    n = len(seeds)
    frames = np.empty((n, w.NUM_FRAMES, w.FRAME_SIZE, w.FRAME_SIZE, 3), dtype=np.uint8)
    waves = np.empty((n, w.NUM_SAMPLES), dtype=np.float32)
    pitch = np.empty(n, dtype=np.float32)
    for i, s in enumerate(seeds):
        clip = generate_clip(s)
        frames[i] = np.rint(clip.frames * 255.0).astype(np.uint8)
        waves[i] = clip.waveform
        pitch[i] = w.COLOURS[clip.colour].pitch_hz
    return {"frames": torch.from_numpy(frames), "waves": torch.from_numpy(waves), "pitch": torch.from_numpy(pitch)}


def lr_at(step: int, steps: int, lr: float, warmup: int = 100) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _noisy(z: torch.Tensor, level: float, gen: torch.Generator) -> torch.Tensor:
    """Latent plus Gaussian noise at `level` times each channel's batch std: the decoder learns to
    tolerate small latent errors, as diffusion samples will have."""
    if level <= 0:
        return z
    dims = [d for d in range(z.ndim) if d != 1]
    std = z.detach().std(dim=dims, keepdim=True)
    return z + level * std * torch.randn(z.shape, generator=gen).to(z)


def _fit(model, name: str, steps: int, lr: float, loss_step, describe, log_every: int, log) -> float:
    """The loop both autoencoders train with: Adam (0.9, 0.99), lr_at's warm-up and cosine, gradients
    clipped to norm 1. `loss_step()` draws a batch and returns (loss, figures); every `log_every` steps
    the figures' mean is logged through `describe`. Returns the seconds it took."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99))
    model.train()
    start, recent = time.time(), []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        loss, figures = loss_step()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(figures)
        if (step + 1) % log_every == 0 or step + 1 == steps:
            log(f"{name} step {step + 1}/{steps}  {describe(np.mean(recent, axis=0))}  {time.time() - start:.0f} s")
            recent = []
    model.eval()
    return round(time.time() - start, 1)


# ---------------------------------------------------------------------------------- video
def train_video(model: VideoAE, pool: dict, steps: int, batch: int, lr: float, seed: int,
                latent_noise: float = 0.0, log=print) -> dict:
    device = next(model.parameters()).device
    frames = pool["frames"]
    gen = torch.Generator().manual_seed(seed)
    k = model.temporal_factor

    def loss_step():
        idx = torch.randint(len(frames), (batch,), generator=gen)
        first = torch.randint(w.NUM_FRAMES // k, (batch,), generator=gen) * k
        x = frames[idx[:, None], first[:, None] + torch.arange(k)]  # [B, k, H, W, 3] uint8
        x = x.to(device).permute(0, 4, 1, 2, 3).float() / 255.0
        flip = torch.rand(batch, generator=gen) < 0.5  # the world is left-right symmetric
        x = torch.where(flip[:, None, None, None, None].to(device), x.flip(-1), x)
        loss = F.mse_loss(model.decode_raw(_noisy(model.encode_raw(x), latent_noise, gen)), x)
        return loss, [loss.item()]

    seconds = _fit(model, "video", steps, lr, loss_step, log_every=200, log=log,
                   describe=lambda v: f"mse {v[0]:.2e}  psnr {10 * math.log10(1 / v[0]):.2f} dB")
    return {"steps": steps, "batch_pairs": batch, "lr": lr, "latent_noise": latent_noise, "seconds": seconds}


@torch.no_grad()
def latent_stats(encode_raw, inputs: torch.Tensor, chunk: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    zs = torch.cat([encode_raw(inputs[i:i + chunk]) for i in range(0, len(inputs), chunk)])
    dims = [d for d in range(zs.ndim) if d != 1]
    return zs.mean(dim=dims), zs.std(dim=dims)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10.0 * torch.log10(1.0 / F.mse_loss(a.float(), b.float())))


@torch.no_grad()
def evaluate_video(model: VideoAE, clips) -> dict:
    values, latents = [], []
    for clip in clips:
        x = torch.from_numpy(clip.frames)[None]
        z = model.encode(x)
        latents.append(z)
        values.append(psnr(model.decode(z), x))
    z = torch.cat(latents)
    return {"clips": len(clips), "psnr_mean_db": round(float(np.mean(values)), 2),
            "psnr_min_db": round(float(np.min(values)), 2),
            "latent_channel_mean": [round(v, 3) for v in z.mean(dim=(0, 2, 3, 4)).tolist()],
            "latent_channel_std": [round(v, 3) for v in z.std(dim=(0, 2, 3, 4)).tolist()]}


# ---------------------------------------------------------------------------------- audio
FFT_SIZES = (2048, 1024, 512, 256, 128, 64)


def mrstft_loss(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss: spectral convergence + log-magnitude L1, averaged over sizes."""
    total = 0.0
    for n in FFT_SIZES:
        win = torch.hann_window(n, dtype=x.dtype, device=x.device)
        sx = torch.stft(x, n, n // 4, window=win, return_complex=True).abs()
        sy = torch.stft(y, n, n // 4, window=win, return_complex=True).abs()
        sc = torch.linalg.norm(sx - sy, dim=(1, 2)) / torch.linalg.norm(sx, dim=(1, 2)).clamp_min(1e-6)
        total = total + sc.mean() + (torch.log(sx + 1e-5) - torch.log(sy + 1e-5)).abs().mean()
    return total / len(FFT_SIZES)


def log_rms(x: torch.Tensor, hop: int) -> torch.Tensor:
    return torch.log(torch.sqrt(x.reshape(x.shape[0], -1, hop).pow(2).mean(-1) + 1e-10) + 1e-4)


def train_audio(model: AudioAE, pool: dict, steps: int, batch: int, lr: float, seed: int,
                latent_noise: float = 0.0, crop: int = 64, log=print) -> dict:
    """Trains on random crops of `crop` latents (crop * hop samples, starting on a latent boundary)."""
    device = next(model.parameters()).device
    waves, pitch = pool["waves"], pool["pitch"]
    gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator().manual_seed(seed + 1)
    hop, env_hop = model.hop, 16

    def loss_step():
        idx = torch.randint(len(waves), (batch,), generator=gen)
        first = torch.randint(waves.shape[1] // hop - crop + 1, (batch,), generator=gen) * hop
        x = waves[idx[:, None], first[:, None] + torch.arange(crop * hop)].to(device)
        p = model.synth_params(_noisy(model.encode_raw(x), latent_noise, gen))
        y = model.synthesize(p, x.shape[-1], noise_gen)
        # Pitch is supervised where the clip sounds (frames within 2 latents of a loud one).
        loud = (x.reshape(batch, -1, hop).pow(2).mean(-1).sqrt() > 0.01).float()
        near = F.max_pool1d(loud[:, None], 5, 1, 2)[:, 0]
        f0_err = (torch.log2(p["f0"]) - torch.log2(pitch[idx].to(device))[:, None]).abs()
        f0_loss = (f0_err * near).sum() / near.sum().clamp_min(1.0)
        spec = mrstft_loss(y, x)
        env = (log_rms(y, env_hop) - log_rms(x, env_hop)).abs().mean()
        return spec + env + f0_loss, [spec.item(), env.item(), f0_loss.item()]

    seconds = _fit(model, "audio", steps, lr, loss_step, log_every=100, log=log,
                   describe=lambda v: f"stft {v[0]:.3f}  env {v[1]:.3f}  f0 {v[2]:.4f} oct")
    return {"steps": steps, "batch_crops": batch, "crop_latents": crop, "lr": lr, "latent_noise": latent_noise,
            "seconds": seconds}


def onset_errors_ms(reference: np.ndarray, found: np.ndarray, window_s: float = 0.05) -> tuple[list, int, int]:
    """For each reference onset, |nearest found onset - it| in ms (None when none within window_s);
    and the numbers of missed reference onsets and of extra found onsets."""
    errors, missed = [], 0
    for t in reference:
        d = np.abs(found - t).min() if len(found) else np.inf
        if d <= window_s:
            errors.append(float(d * 1000.0))
        else:
            missed += 1
    extra = sum(1 for t in found if not len(reference) or np.abs(reference - t).min() > window_s)
    return errors, missed, extra


def _finite(v, digits=5):
    return round(float(v), digits) if np.isfinite(v) else None


@torch.no_grad()
def evaluate_audio(model: AudioAE, clips) -> dict:
    sr = w.SAMPLE_RATE
    errors, missed, extra, pitch_rel, pitch_rel_truth, latents = [], 0, 0, [], [], []
    for clip in clips:
        x = torch.from_numpy(clip.waveform)[None]
        z = model.encode(x)
        latents.append(z)
        y = model.decode(z)[0].numpy()
        ref, rec = m.sound_onsets(clip.waveform, sr), m.sound_onsets(y, sr)
        e, mi, ex = onset_errors_ms(ref, rec)
        errors += e
        missed += mi
        extra += ex
        f_ref, f_rec = m.fundamental_hz(clip.waveform, sr), m.fundamental_hz(y, sr)
        pitch_rel.append(abs(f_rec / f_ref - 1.0))
        pitch_rel_truth.append(abs(f_rec / w.COLOURS[clip.colour].pitch_hz - 1.0))
    z = torch.cat(latents)
    errors = np.array(errors)
    return {"clips": len(clips), "onsets": int(len(errors) + missed),
            "onset_error_ms_median": round(float(np.median(errors)), 3) if len(errors) else None,
            "onset_error_ms_max": round(float(errors.max()), 3) if len(errors) else None,
            "onsets_within_5ms": round(float(np.sum(errors <= 5.0)) / max(1, len(errors) + missed), 4),
            "onsets_missed": missed, "onsets_extra": extra,
            "pitch_rel_error_max": _finite(np.max(pitch_rel)),
            "pitch_rel_error_vs_world_max": _finite(np.max(pitch_rel_truth)),
            "latent_channel_mean": [round(v, 3) for v in z.mean(dim=(0, 2)).tolist()],
            "latent_channel_std": [round(v, 3) for v in z.std(dim=(0, 2)).tolist()]}


@torch.no_grad()
def evaluate_joint(video_ae: VideoAE, audio_ae: AudioAE, clips) -> dict:
    """The colleague's ToyAV metrics (sync, semantics) on clips whose picture and sound both went
    through the autoencoders, next to the same metrics on the original clips."""
    rec, ref = [], []
    for clip in clips:
        frames = video_ae.decode(video_ae.encode(torch.from_numpy(clip.frames)[None]))[0].numpy()
        wave = audio_ae.decode(audio_ae.encode(torch.from_numpy(clip.waveform)[None]))[0].numpy()
        rec.append(m.score_clip(frames, w.FPS, wave, w.SAMPLE_RATE, clip.prompt))
        ref.append(m.score_clip(clip.frames, w.FPS, clip.waveform, w.SAMPLE_RATE, clip.prompt))
    r = lambda d: {k: (None if v != v else round(v, 4)) if isinstance(v, float) else v for k, v in d.items()}
    return {"reconstructed": r(m.aggregate(rec)), "original": r(m.aggregate(ref))}


# ---------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (e.g. ccl_core/assets/)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", choices=["video", "audio", "text"],
                    help="train only these (repeatable); default all")
    ap.add_argument("--pool-clips", type=int, default=1500, help="training clips generated into memory")
    ap.add_argument("--video-steps", type=int, default=2500)
    ap.add_argument("--video-batch", type=int, default=32, help="frame pairs per step")
    ap.add_argument("--video-lr", type=float, default=2e-3)
    ap.add_argument("--audio-steps", type=int, default=1500)
    ap.add_argument("--audio-batch", type=int, default=16, help="crops per step")
    ap.add_argument("--audio-lr", type=float, default=2e-3)
    ap.add_argument("--audio-crop", type=int, default=64, help="training crop in latents (64 = 1.024 s)")
    ap.add_argument("--latent-noise", type=float, default=0.02,
                    help="latent noise during training, relative to each channel's std")
    ap.add_argument("--eval-clips", type=int, default=64, help="held-out clips for the metrics")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="where to train (the shipped files were trained on cpu)")
    ap.add_argument("--report", help="also write the metrics as JSON here")
    args = ap.parse_args(argv)
    only = set(args.only or ["video", "audio", "text"])
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = (f"{platform.processor() or platform.machine()}, {args.threads} torch threads, "
               f"torch {torch.__version__}, trained on {args.device}")
    report = {"seed": args.seed, "machine": machine}
    t0 = time.time()

    if "text" in only:
        enc = ToyAVTextEncoder()
        save_text_encoder(enc, out / TEXT_FILE)
        report["text"] = {"vocab": list(enc.vocab), "tokens": enc.max_tokens, "dim": enc.dim}

    if only & {"video", "audio"}:
        t = time.time()
        pool = make_pool(training_seeds(args.seed, args.pool_clips))
        held = [generate_clip(s) for s in heldout_seeds(args.eval_clips)]
        report["data"] = {"train_clips": args.pool_clips, "heldout_clips": args.eval_clips,
                          "seconds": round(time.time() - t, 1)}
        print(f"generated {args.pool_clips} training clips in {time.time() - t:.0f} s", flush=True)
        stats_idx = torch.arange(min(128, args.pool_clips))

    if "video" in only:
        torch.manual_seed(args.seed)
        video = VideoAE(VideoAEConfig()).to(args.device)
        train = train_video(video, pool, args.video_steps, args.video_batch, args.video_lr, args.seed,
                            args.latent_noise, log=lambda s: print(s, flush=True))
        video.cpu()
        x = pool["frames"][stats_idx].permute(0, 4, 1, 2, 3).float() / 255.0
        video.set_latent_stats(*latent_stats(video.encode_raw, x))
        ev = evaluate_video(video, held)
        report["video"] = {"params": count_parameters(video), "train": train, "heldout": ev,
                           "latent_shape": list(video.latent_shape()), "latent_fps": video.video_latent_fps}
        save_autoencoder(video, out / VIDEO_AE_FILE, report["video"])
        print(json.dumps(report["video"]), flush=True)

    if "audio" in only:
        torch.manual_seed(args.seed)
        audio = AudioAE(AudioAEConfig()).to(args.device)
        train = train_audio(audio, pool, args.audio_steps, args.audio_batch, args.audio_lr, args.seed,
                            args.latent_noise, args.audio_crop, log=lambda s: print(s, flush=True))
        audio.cpu()
        audio.set_latent_stats(*latent_stats(audio.encode_raw, pool["waves"][stats_idx]))
        ev = evaluate_audio(audio, held)
        report["audio"] = {"params": count_parameters(audio), "train": train, "heldout": ev,
                           "latent_shape": list(audio.latent_shape()), "latent_rate": audio.audio_latent_rate}
        save_autoencoder(audio, out / AUDIO_AE_FILE, report["audio"])
        print(json.dumps(report["audio"]), flush=True)

    if {"video", "audio"} <= only:
        report["joint"] = evaluate_joint(video, audio, held)
        print(json.dumps(report["joint"]), flush=True)

    report["total_seconds"] = round(time.time() - t0, 1)
    report["files_bytes"] = {p.name: p.stat().st_size for p in sorted(out.glob("toyav_*.safetensors"))}
    print(json.dumps(report, indent=1), flush=True)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
