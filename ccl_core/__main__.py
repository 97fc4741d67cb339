"""Command line: `python -m ccl_core generate --prompt "a red circle bouncing" --out clip.mp4`.

Uses the embedded ToyAV model unless --model names another CCL checkpoint made for the ToyAV
autoencoders. `--task a2v --audio FILE` makes video for a sound, `--task v2a --video FILE` sound for
a video, `--task i2av --image FILE` a clip starting on a picture (scaled to cover the frame and
centre-cropped: a warning above 2 % cut away, refused above 50 %); inputs of any sample rate,
channel count, size or frame rate are converted, and an input much shorter or longer than the clip
is padded or cut with a warning.

Length: `--seconds S` (default: the model's native 2 s). `--window W --overlap O` makes a clip of
--seconds in windows of W seconds, each continuing the clip so far from its last O seconds (default
0.5). `--extend FILE.mp4` continues a clip: --seconds more of it (default one window less the
overlap), written to --out with the input's own frames and sound first; the input is never touched.

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

    if args.prompt is None and args.task in ("t2av", "i2av"):
        raise ValueError(f"--task {args.task} needs --prompt")
    given = {"a2v": "--audio", "v2a": "--video", "i2av": "--image"}  # the task -> the input it takes
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
    _check_length_options(args)
    check_output_path(args.out, overwrite=args.overwrite)
    if args.extend is not None and os.path.exists(args.out) and os.path.samefile(args.out, args.extend):
        raise ValueError(f"--out {args.out} is the clip being extended; write the result to another file "
                         "(the input is never overwritten)")


def _check_length_options(args) -> None:
    """--seconds, --window, --overlap and --extend: values and the combinations that make sense."""
    for option in ("seconds", "window", "overlap"):
        value = getattr(args, option)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"--{option} must be a number of seconds > 0, got {value}")
    if args.overlap is not None and args.window is None and args.extend is None:
        raise ValueError("--overlap is only used with --window (a long clip) or --extend FILE")
    if (args.window is not None or args.extend is not None) and args.task in ("a2v", "v2a"):
        option = "--window" if args.window is not None else "--extend"
        raise ValueError(f"{option} makes both streams (t2av, or i2av for a long clip); --task {args.task} "
                         "cannot be combined with it")
    if args.extend is not None:
        if args.task != "t2av":
            raise ValueError(f"--extend continues the clip it is given; --task {args.task} cannot be combined with it")
        if args.prompt is None:
            raise ValueError("--extend needs --prompt (what the clip shows, to continue it)")
        if not os.path.isfile(args.extend):
            raise ValueError(f"--extend: file not found: {args.extend}")
    overlap = 0.5 if args.overlap is None else args.overlap
    if args.window is not None:
        if overlap >= args.window:
            raise ValueError(f"--overlap ({overlap:g} s) must be shorter than --window ({args.window:g} s), "
                             "or no window would add anything")
        if args.extend is None:
            if args.seconds is None:
                raise ValueError("--window makes a long clip in windows: give its length with --seconds")
            if args.seconds <= args.window:
                raise ValueError(f"--seconds {args.seconds:g} fits in one --window of {args.window:g} s; "
                                 "drop --window (or make --seconds longer)")


def _read_image(path, size):
    """The first frame for i2av: the image scaled to cover the frame and centre-cropped, with a
    warning saying how much of it the crop cut away, refused if that is most of it (the node's limits)."""
    from .media import CROP_REFUSED, CROP_WARN, MediaError, MediaWarning, cover_crop, read_image

    image = read_image(path)
    fitted, lost = cover_crop(image, size)
    shapes = f"{path} is {image.shape[1]}x{image.shape[0]}, the clip {size[1]}x{size[0]}"
    if lost > CROP_REFUSED:
        raise MediaError(f"{shapes}: the centre crop would cut away {lost:.0%} of the image (more than "
                         f"{CROP_REFUSED:.0%}); crop or pad it to about the clip's aspect ratio first")
    if lost > CROP_WARN:
        warnings.warn(f"{shapes}: the centre crop cuts away {lost:.0%} of the image", MediaWarning)
    return fitted


def _read_clip(pipe, path):
    """A clip to extend: its frames at the pipeline's rate and size (cut to whole latent frames) and
    its sound over the same time, with their latents."""
    from .generate import _temporal_patch, clip_lengths
    from .media import fit_length, read_audio, read_video
    from .toyav import clip

    frames = read_video(path, pipe.video_fps, (clip.FRAME_SIZE, clip.FRAME_SIZE))
    unit = pipe.video_ae.temporal_factor * _temporal_patch(pipe)
    whole = frames.shape[0] // unit * unit
    if whole == 0:
        raise ValueError(f"{path} is too short to extend ({frames.shape[0]} frames at {pipe.video_fps:g} fps)")
    if whole < frames.shape[0]:
        warnings.warn(f"{path}: its last {frames.shape[0] - whole} frame(s) are dropped (the clip is continued "
                      f"from a whole number of latent frames, {unit} frames each)")
    frames = frames[:whole]
    wave = read_audio(path, pipe.sample_rate, whole / pipe.video_fps)
    video = pipe.video_ae.encode(frames[None])
    length = clip_lengths(pipe, whole / pipe.video_fps)[1] * pipe.audio_ae.hop
    audio = pipe.audio_ae.encode(fit_length(wave, length)[None])
    return frames, wave, (video, audio)


def _generate(args, state: dict) -> int:
    from .generate import ProgressBar, clip_lengths, generate, generate_long, window_plan
    from .media import read_audio, read_video, write_mp4
    from .toyav import clip
    from .toyav.embedded import load_pipeline

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = load_pipeline(args.model)
    for text in (args.prompt, args.negative, args.negative_audio):
        if text is not None:
            pipe.text_encoder.tokenize([text])  # an unknown word fails here, listing the vocabulary
    audio = frames = image = None
    size = (clip.FRAME_SIZE, clip.FRAME_SIZE)
    seconds = None
    if args.seconds is not None and args.extend is None:  # rounded once to whole tokens (warning if that changes it)
        seconds = clip_lengths(pipe, args.seconds)[0] / pipe.video_ae.video_latent_fps
    if args.task == "a2v":
        audio = read_audio(args.audio, pipe.sample_rate, seconds or pipe.native_seconds)
    if args.task == "v2a":
        frames = read_video(args.video, pipe.video_fps, size, seconds or pipe.native_seconds)
    if args.task == "i2av":
        image = _read_image(args.image, size)
    guidance = guidance_from_args(args)
    settings = dict(steps=args.steps, sampler=args.sampler, shift=args.shift, guidance=guidance,
                    negative=args.negative, negative_audio=args.negative_audio)
    if args.window is not None or args.extend is not None:
        overlap = 0.5 if args.overlap is None else args.overlap
        given = clip = None
        if args.extend is not None:
            given_frames, given_wave, clip = _read_clip(pipe, args.extend)
            window = args.window or pipe.native_seconds
            seconds = given_frames.shape[0] / pipe.video_fps + (window - overlap if args.seconds is None else
                                                                 args.seconds)
            given = (given_frames, given_wave)
        plan = window_plan(pipe, seconds, args.window, overlap, start=0 if clip is None else clip[0].shape[2])
        state["bar"] = None if args.quiet else ProgressBar(len(plan) * args.steps,
                                                           label=f"{len(plan)} window{'s' * (len(plan) > 1)}")
        result = generate_long(pipe, args.prompt, seconds, args.window, overlap, seed=args.seed, clip=clip,
                               progress=state["bar"], **settings,
                               **(dict(task="i2av", image=image) if args.task == "i2av" else {}))
        if given is not None:  # the input's own frames and sound, then what follows them
            n, s = given[0].shape[0], given[1].shape[0]
            result.frames = torch.cat([given[0], result.frames[n:]])
            result.waveform = torch.cat([given[1], result.waveform[s:]])
    else:
        state["bar"] = None if args.quiet else ProgressBar(args.steps)
        result = generate(pipe, args.prompt or "", seed=args.seed, task=args.task, audio=audio, frames=frames,
                          image=image, seconds=seconds, progress=state["bar"], **settings)
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


def add_sampling_arguments(ap: argparse.ArgumentParser) -> None:
    """--sampler, --shift, --guidance and its scales, with the embedded model's defaults (toyav.embedded
    SHIFT, GUIDANCE): the command line's options, and the ToyAV quality benchmark's."""
    from .guidance import FORMS
    from .sampling import DEFAULT_METHOD, METHODS
    from .toyav.embedded import GUIDANCE, SHIFT

    ap.add_argument("--sampler", choices=list(METHODS), default=DEFAULT_METHOD)
    ap.add_argument("--shift", type=float, default=SHIFT,
                    help=f"the sampling shift (default {SHIFT:g}, the embedded model's)")
    ap.add_argument("--guidance", choices=list(FORMS), default=GUIDANCE.form)
    ap.add_argument("--video-scale", type=float, default=GUIDANCE.video_scale)
    ap.add_argument("--audio-scale", type=float, default=GUIDANCE.audio_scale)
    ap.add_argument("--video-av-scale", type=float, default=GUIDANCE.video_av_scale,
                    help="decoupled form: cross-modal scale (video)")
    ap.add_argument("--audio-av-scale", type=float, default=GUIDANCE.audio_av_scale,
                    help="decoupled form: cross-modal scale (audio)")


def guidance_from_args(args):
    """The Guidance that add_sampling_arguments' options name."""
    from .guidance import Guidance

    return Guidance(args.guidance, video_scale=args.video_scale, audio_scale=args.audio_scale,
                    video_av_scale=args.video_av_scale, audio_av_scale=args.audio_av_scale)


def build_parser() -> argparse.ArgumentParser:
    """The command line; its sampling defaults are the embedded model's (add_sampling_arguments)."""
    ap = argparse.ArgumentParser(prog="python -m ccl_core", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate a clip with sound into an mp4")
    g.add_argument("--prompt", default=None, help='e.g. "a red circle bouncing" (ToyAV: a COLOUR SHAPE MOTION)')
    g.add_argument("--out", default="clip.mp4", help="the mp4 to write; its folder must exist (default clip.mp4)")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists (atomically)")
    g.add_argument("--seed", type=int, default=0, help="0 .. 2**32 - 1")
    g.add_argument("--steps", type=int, default=25, help="1 .. 1000")
    add_sampling_arguments(g)
    g.add_argument("--negative", default="", help="negative prompt: the unconditional text (default: the null "
                   "text); of the video tower alone when --negative-audio is given")
    g.add_argument("--negative-audio", default=None, help="the audio tower's own negative prompt (Ovi guides each "
                   "tower with its own; default: --negative)")
    g.add_argument("--task", choices=["t2av", "i2av", "a2v", "v2a"], default="t2av")
    g.add_argument("--audio", help="input sound for --task a2v (any format PyAV reads)")
    g.add_argument("--video", help="input video for --task v2a")
    g.add_argument("--image", help="the first frame for --task i2av (PNG, JPEG, ...; cover-scaled, centre-cropped)")
    g.add_argument("--seconds", type=float, default=None,
                   help="clip length (default: the model's native 2 s); with --extend, the seconds to add")
    g.add_argument("--window", type=float, default=None,
                   help="make the --seconds clip in windows of this many seconds, each continuing the last")
    g.add_argument("--overlap", type=float, default=None,
                   help="seconds of the clip so far each window sees (--window / --extend; default 0.5)")
    g.add_argument("--extend", default=None, help="an mp4 to continue (never overwritten): --out gets it and more")
    g.add_argument("--model", default=None, help="a CCL checkpoint for the ToyAV latents (default: the embedded one)")
    g.add_argument("--threads", type=int, default=min(2, MAX_THREADS), help=f"1 .. {MAX_THREADS}")
    g.add_argument("--quiet", action="store_true")
    st = sub.add_parser("stamp", help="add a ToyAV checkpoint's latent facts (spaces, native size, null text, "
                        "shift) and, where its config has none, the self-attention window of its 2 s clip to its "
                        "metadata, tensors unchanged, for CCL Model Loader")
    st.add_argument("checkpoint", help="the ToyAV CCL checkpoint (.safetensors) to stamp")
    st.add_argument("--out", default=None, help="write a stamped copy here instead of updating the file in place")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "generate":
        return run(args)
    if args.command == "stamp":
        return stamp(args)
    return 2


def stamp(args) -> int:
    """Stamp a ToyAV checkpoint (toyav.embedded.stamp) with the facts of the shipped autoencoders and text encoder."""
    from .errors import USER_ERRORS
    from .toyav.embedded import stamp as stamp_toyav

    try:
        print(f"stamped {stamp_toyav(args.checkpoint, args.out)}")
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
