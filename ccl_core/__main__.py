"""Command line: `python -m ccl_core generate --prompt "a red circle bouncing" --out clip.mp4`.

Uses the embedded ToyAV model unless --model names another CCL checkpoint made for the ToyAV
autoencoders. `--task a2v --audio FILE` makes video for a sound, `--task v2a --video FILE` sound for
a video; inputs of any sample rate, channel count, size or frame rate are converted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _generate(args) -> int:
    import torch

    from .generate import ProgressBar, generate
    from .guidance import Guidance
    from .media import MediaError, read_audio, read_video, write_mp4
    from .toyav import world
    from .toyav.embedded import load_pipeline

    if os.path.exists(args.out) and not args.overwrite:
        print(f"error: {args.out} exists; choose another --out or pass --overwrite", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        pipe = load_pipeline(args.model)
        if args.prompt is not None:
            pipe.text_encoder.tokenize([args.prompt])  # an unknown word fails here, listing the vocabulary
        audio = frames = None
        seconds = world.NUM_FRAMES / world.FPS
        if args.task == "a2v":
            if not args.audio:
                raise ValueError("--task a2v needs --audio FILE")
            audio = read_audio(args.audio, pipe.sample_rate, seconds)
        if args.task == "v2a":
            if not args.video:
                raise ValueError("--task v2a needs --video FILE")
            frames = read_video(args.video, pipe.video_fps, (world.FRAME_SIZE, world.FRAME_SIZE), seconds)
        guidance = Guidance(args.guidance, video_scale=args.video_scale, audio_scale=args.audio_scale,
                            video_av_scale=args.video_av_scale, audio_av_scale=args.audio_av_scale)
        result = generate(pipe, args.prompt or "", seed=args.seed, steps=args.steps, sampler=args.sampler,
                          shift=args.shift, guidance=guidance, task=args.task, audio=audio, frames=frames,
                          progress=None if args.quiet else ProgressBar(args.steps))
        write_mp4(args.out, result.frames, result.fps, result.waveform, result.sample_rate)
    except (ValueError, FileNotFoundError, MediaError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"wrote {args.out} ({result.frames.shape[0]} frames at {result.fps:g} fps with sound) "
              f"in {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ccl_core", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate a clip with sound into an mp4")
    g.add_argument("--prompt", default=None, help='e.g. "a red circle bouncing" (ToyAV: a COLOUR SHAPE MOTION)')
    g.add_argument("--out", default="clip.mp4")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--steps", type=int, default=25)
    g.add_argument("--sampler", choices=["euler", "dpmpp_2m"], default="dpmpp_2m")
    g.add_argument("--shift", type=float, default=3.0)
    g.add_argument("--guidance", choices=["joint", "decoupled", "cfg", "ovi", "none"], default="joint")
    g.add_argument("--video-scale", type=float, default=3.0)
    g.add_argument("--audio-scale", type=float, default=3.0)
    g.add_argument("--video-av-scale", type=float, default=2.0, help="decoupled form: cross-modal scale (video)")
    g.add_argument("--audio-av-scale", type=float, default=2.0, help="decoupled form: cross-modal scale (audio)")
    g.add_argument("--task", choices=["t2av", "a2v", "v2a"], default="t2av")
    g.add_argument("--audio", help="input sound for --task a2v (any format PyAV reads)")
    g.add_argument("--video", help="input video for --task v2a")
    g.add_argument("--model", default=None, help="a CCL checkpoint for the ToyAV latents (default: the embedded one)")
    g.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    g.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.command == "generate":
        if args.prompt is None and args.task == "t2av":
            ap.error("generate needs --prompt for task t2av")
        return _generate(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
