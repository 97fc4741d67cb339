"""Command line: `python -m ccl_core generate --prompt "a red circle bouncing" --out clip.mp4`.

Uses the embedded ToyAV model unless --model names another CCL checkpoint made for the ToyAV
autoencoders. `--task a2v --audio FILE` makes video for a sound, `--task v2a --video FILE` sound for
a video; inputs of any sample rate, channel count, size or frame rate are converted, and an input
much shorter or longer than the 2 s clip is padded or cut with a warning.

--out is checked before anything is generated and never overwritten: an existing file, or one
another run creates meanwhile, is an error unless --overwrite (which replaces it atomically).
Every bad input ends in one `error: ...` line and exit code 2; SIGINT and SIGTERM remove the
unfinished file and exit with 130 / 143.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import time
import warnings

MAX_THREADS = max(1, os.cpu_count() or 1)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `finally` (temp-file cleanup) runs."""


@contextlib.contextmanager
def signals_raise():
    """While inside, SIGTERM raises Terminated (SIGINT already raises KeyboardInterrupt)."""
    def on_term(signum, frame):
        raise Terminated()

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def _check_options(args) -> None:
    """Everything about the options that can be checked without loading anything (fast)."""
    from .generate import check_settings
    from .media import check_output_path

    if args.prompt is None and args.task == "t2av":
        raise ValueError("--task t2av needs --prompt")
    given = {"a2v": "--audio", "v2a": "--video"}  # the task -> the input it takes
    for task, option in given.items():
        if getattr(args, option[2:]) is not None and args.task != task:
            raise ValueError(f"{option} is only used by --task {task}; --task {args.task} would ignore it")
    if args.task in given and getattr(args, given[args.task][2:]) is None:
        raise ValueError(f"--task {args.task} needs {given[args.task]} FILE")
    if args.guidance == "none" and (args.negative or args.negative_audio is not None):
        raise ValueError("--guidance none has no unconditional branch: --negative / --negative-audio would be ignored")
    if not 1 <= args.threads <= MAX_THREADS:
        raise ValueError(f"--threads must be in 1..{MAX_THREADS} (this machine's cores), got {args.threads}")
    for option in ("video_scale", "audio_scale", "video_av_scale", "audio_av_scale"):
        if not math.isfinite(getattr(args, option)):
            raise ValueError(f"--{option.replace('_', '-')} must be a finite number, got {getattr(args, option)}")
    try:
        check_settings(args.seed, args.steps, args.shift)
    except ValueError as e:
        raise ValueError(f"--{e}") from None  # "--seed must be ...", "--steps must be ..."
    check_output_path(args.out, overwrite=args.overwrite)


def _generate(args, state: dict) -> int:
    from .generate import ProgressBar, generate
    from .guidance import Guidance
    from .media import read_audio, read_video, write_mp4
    from .toyav import world
    from .toyav.embedded import load_pipeline

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = load_pipeline(args.model)
    for text in (args.prompt, args.negative, args.negative_audio):
        if text is not None:
            pipe.text_encoder.tokenize([text])  # an unknown word fails here, listing the vocabulary
    audio = frames = None
    seconds = world.NUM_FRAMES / world.FPS
    if args.task == "a2v":
        audio = read_audio(args.audio, pipe.sample_rate, seconds)
    if args.task == "v2a":
        frames = read_video(args.video, pipe.video_fps, (world.FRAME_SIZE, world.FRAME_SIZE), seconds)
    guidance = Guidance(args.guidance, video_scale=args.video_scale, audio_scale=args.audio_scale,
                        video_av_scale=args.video_av_scale, audio_av_scale=args.audio_av_scale)
    state["bar"] = None if args.quiet else ProgressBar(args.steps)
    result = generate(pipe, args.prompt or "", seed=args.seed, steps=args.steps, sampler=args.sampler,
                      shift=args.shift, guidance=guidance, task=args.task, audio=audio, frames=frames,
                      progress=state["bar"], negative=args.negative, negative_audio=args.negative_audio)
    path = write_mp4(args.out, result.frames, result.fps, result.waveform, result.sample_rate,
                     overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {path} ({result.frames.shape[0]} frames at {result.fps:g} fps with sound) "
              f"in {time.perf_counter() - t0:.1f} s")
    return 0


def run(args) -> int:
    """Run a parsed command; every error the package raises for a bad input becomes one line."""
    from .errors import USER_ERRORS

    state = {}

    def say(line):
        if state.get("bar") is not None:
            state["bar"].end_line()
        print(line, file=sys.stderr)

    try:
        with signals_raise(), warnings.catch_warnings():
            warnings.showwarning = _show_warning  # "warning: ..." lines, restored on the way out
            _check_options(args)
            return _generate(args, state)
    except USER_ERRORS as e:
        say(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        say("interrupted (SIGINT); nothing was written")
        return 130
    except Terminated:
        say("terminated (SIGTERM); nothing was written")
        return 143
    finally:
        if "ccl_core.media" in sys.modules:  # a signal inside a cleanup can skip it: sweep once more
            sys.modules["ccl_core.media"].remove_partial_files()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ccl_core", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate a clip with sound into an mp4")
    g.add_argument("--prompt", default=None, help='e.g. "a red circle bouncing" (ToyAV: a COLOUR SHAPE MOTION)')
    g.add_argument("--out", default="clip.mp4", help="the mp4 to write; its folder must exist (default clip.mp4)")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists (atomically)")
    g.add_argument("--seed", type=int, default=0, help="0 .. 2**32 - 1")
    g.add_argument("--steps", type=int, default=25, help="1 .. 1000")
    g.add_argument("--sampler", choices=["euler", "dpmpp_2m"], default="dpmpp_2m")
    g.add_argument("--shift", type=float, default=3.0)
    g.add_argument("--guidance", choices=["joint", "decoupled", "cfg", "ovi", "none"], default="joint")
    g.add_argument("--video-scale", type=float, default=3.0)
    g.add_argument("--audio-scale", type=float, default=3.0)
    g.add_argument("--video-av-scale", type=float, default=2.0, help="decoupled form: cross-modal scale (video)")
    g.add_argument("--audio-av-scale", type=float, default=2.0, help="decoupled form: cross-modal scale (audio)")
    g.add_argument("--negative", default="", help="negative prompt: the unconditional text (default: the null "
                   "text); of the video tower alone when --negative-audio is given")
    g.add_argument("--negative-audio", default=None, help="the audio tower's own negative prompt (Ovi guides each "
                   "tower with its own; default: --negative)")
    g.add_argument("--task", choices=["t2av", "a2v", "v2a"], default="t2av")
    g.add_argument("--audio", help="input sound for --task a2v (any format PyAV reads)")
    g.add_argument("--video", help="input video for --task v2a")
    g.add_argument("--model", default=None, help="a CCL checkpoint for the ToyAV latents (default: the embedded one)")
    g.add_argument("--threads", type=int, default=min(2, MAX_THREADS), help=f"1 .. {MAX_THREADS}")
    g.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.command == "generate":
        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
