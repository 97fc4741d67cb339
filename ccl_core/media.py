"""Reading and writing media: mp4 out (H.264 + AAC), audio and video in, converted to what a model takes.

Inputs of another sample rate, channel count, frame size or frame rate are converted (torchaudio
resamples audio), never rejected for that alone; a file that cannot be decoded gets one clear error.
An input much shorter or longer than the clip is padded or cut with a MediaWarning saying so, and
one that covers under MIN_INPUT_FRACTION of the clip is refused.

Outputs are never lost: they are written to a unique temp file in the target folder and published
under their name with an atomic step that fails if the name exists (`publish`), so two writers to
one name cannot both "succeed"; `overwrite=True` replaces atomically, `next_free=True` takes the
next free name (name-1.mp4, name-2.mp4, ...).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import secrets
import warnings
from fractions import Fraction
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .errors import CCLError

# An input that covers less of the clip than this is refused: the result would be mostly padding.
MIN_INPUT_FRACTION = 0.1
# An input within this fraction of the clip's length is fitted without a word (codec padding, rounding).
LENGTH_TOLERANCE = 0.05


class MediaError(CCLError, ValueError):
    """A media file that cannot be read or written, with the reason."""


class OutputExistsError(MediaError):
    """The output name is taken (before the write, or by another writer during it); nothing was replaced."""


class MediaWarning(UserWarning):
    """An input was changed to fit the clip (padded or cut); the message says how."""


def _fit_note(path, have: float, want: float, fill: str) -> None:
    """Refuse an input far too short for the clip; warn when padding or cutting changes it noticeably."""
    if have < MIN_INPUT_FRACTION * want:
        raise MediaError(f"{path} lasts {have:.3g} s, under {MIN_INPUT_FRACTION:.0%} of the {want:g} s clip, so "
                         f"the result would be mostly {fill}; give an input of about {want:g} s")
    if have < want * (1 - LENGTH_TOLERANCE):
        warnings.warn(f"{path} lasts {have:.2f} s but the clip is {want:g} s: its last {want - have:.2f} s "
                      f"are {fill}", MediaWarning, stacklevel=3)
    elif have > want * (1 + LENGTH_TOLERANCE):
        warnings.warn(f"{path} lasts {have:.2f} s but the clip is {want:g} s: only its first {want:g} s are "
                      f"used, the rest is cut", MediaWarning, stacklevel=3)


def _container_seconds(container) -> float:
    import av

    return float(container.duration / av.time_base) if container.duration else 0.0


def _open(path):
    import av

    if not os.path.isfile(path):
        raise MediaError(f"file not found: {path}")
    try:
        return av.open(os.fspath(path))
    except Exception as e:  # PyAV raises many kinds (InvalidDataError, FFmpegError, ...)
        raise MediaError(f"cannot read {path}: {e}") from None


def read_audio(path, sample_rate: int, seconds: Optional[float] = None) -> torch.Tensor:
    """Mono float waveform [S] at `sample_rate` (down-mixed and resampled), cut or zero-padded to `seconds`.

    With `seconds`, decoding stops soon after the clip's length (a long file costs no more), an input
    under MIN_INPUT_FRACTION of it is refused and a noticeable pad or cut is reported (MediaWarning).
    """
    import torchaudio.functional as AF

    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        src_rate = stream.rate or stream.codec_context.sample_rate
        # enough source samples to tell "a little long" from "long", then stop
        enough = None if seconds is None else int(seconds * (1 + 2 * LENGTH_TOLERANCE) * src_rate) + 1
        got = 0
        chunks = []
        try:
            for frame in container.decode(stream):
                a = frame.to_ndarray().astype(np.float32)
                if frame.format.is_planar:
                    a = a.reshape(len(frame.layout.channels), -1)
                else:
                    a = a.reshape(-1, len(frame.layout.channels)).T
                if frame.format.name.startswith(("s16",)):
                    a = a / 32768.0
                elif frame.format.name.startswith("s32"):
                    a = a / 2147483648.0
                chunks.append(a)
                got += a.shape[-1]
                if enough is not None and got >= enough:
                    break
        except Exception as e:
            raise MediaError(f"cannot decode the audio of {path}: {e}") from None
        total = _container_seconds(container)
    if not chunks:
        raise MediaError(f"{path} has an empty audio stream")
    wave = torch.from_numpy(np.concatenate(chunks, axis=1)).mean(0)  # down-mix
    if src_rate != sample_rate:
        wave = AF.resample(wave, src_rate, sample_rate)
    if seconds is not None:
        have = got / src_rate
        _fit_note(path, max(have, total) if enough is not None and got >= enough else have, seconds, "silence")
        wave = fit_length(wave, round(seconds * sample_rate))
    return wave


def read_video(path, fps: float, size: Tuple[int, int], seconds: Optional[float] = None) -> torch.Tensor:
    """Frames [T, H, W, 3] in 0..1 at `fps` and `size` (H, W), cut or padded (last frame held).

    With `seconds`, decoding stops soon after the clip's length, an input under MIN_INPUT_FRACTION
    of it is refused and a noticeable pad or cut is reported (MediaWarning).
    """
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path} has no video stream")
        stream = container.streams.video[0]
        src_rate = float(stream.average_rate or fps)
        enough = None if seconds is None else seconds * (1 + 2 * LENGTH_TOLERANCE)
        frames, times = [], []
        try:
            for frame in container.decode(stream):
                frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
                times.append(float(frame.pts * stream.time_base) if frame.pts is not None else len(times) / src_rate)
                if enough is not None and times[-1] - times[0] >= enough:
                    break  # past the part that is kept: a long file is not decoded whole
        except Exception as e:
            raise MediaError(f"cannot decode the video of {path}: {e}") from None
        total = _container_seconds(container)
    if not frames:
        raise MediaError(f"{path} has no video frames")
    t0 = times[0]
    times = torch.tensor([t - t0 for t in times])
    if seconds is None:
        count = max(1, round(float(times[-1]) * fps) + 1)
    else:
        count = round(seconds * fps)
        have = float(times[-1]) + 1 / src_rate  # the last frame lasts one source frame
        _fit_note(path, max(have, total) if have >= enough else have, seconds, "the last frame, held")
    idx = source_frames(times, count, fps)
    x = torch.stack([frames[i] for i in idx.tolist()]).float().div(255.0)  # [count, h, w, 3], only those used
    if tuple(x.shape[1:3]) != tuple(size):
        x = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear", antialias=True,
                          align_corners=False).permute(0, 2, 3, 1).clamp(0, 1)
    return x


def read_image(path) -> torch.Tensor:
    """An image file (PNG, JPEG, WebP, ... anything FFmpeg reads; a video gives its first frame) as
    [H, W, 3] RGB in 0..1; transparency is dropped."""
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path} is not an image (no picture in it)")
        try:
            frame = next(container.decode(container.streams.video[0]), None)
        except Exception as e:
            raise MediaError(f"cannot decode the image {path}: {e}") from None
    if frame is None:
        raise MediaError(f"{path} holds no picture")
    return torch.from_numpy(frame.to_ndarray(format="rgb24")).float().div(255.0)


def fit_length(x: torch.Tensor, n: int, pad: str = "zeros", dim: int = -1) -> torch.Tensor:
    """Cut `x` along `dim` to length n, or pad it there: with zeros (silence, an absent latent) or by
    repeating its last element (a held last frame or latent)."""
    cur = x.shape[dim]
    if cur >= n:
        return x.narrow(dim, 0, n)
    if pad == "zeros":
        shape = list(x.shape)
        shape[dim] = n - cur
        return torch.cat([x, x.new_zeros(shape)], dim=dim)
    if pad == "repeat":
        if cur == 0:
            raise ValueError("cannot pad an empty tensor by repeating its last element")
        return torch.cat([x, x.narrow(dim, cur - 1, 1).expand(*[n - cur if d == dim % x.ndim else -1
                                                                for d in range(x.ndim)])], dim=dim)
    raise ValueError(f"unknown pad {pad!r}; expected 'zeros' or 'repeat'")


def source_frames(times: torch.Tensor, count: int, fps: float) -> torch.Tensor:
    """Frame-rate conversion: for each of `count` output frames at `fps`, the index of the source frame
    shown at that instant (the nearest earlier one; `times`: the source frames' ascending times in s)."""
    want = torch.arange(count, dtype=times.dtype) / fps
    return (torch.searchsorted(times, want + 1e-6, right=True) - 1).clamp(0, len(times) - 1)


AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


# With x264's macroblock tree (its default rate control across frames) the same frames encode to a
# slightly different picture from one write to the next (seen at most widths from 32 to 416 px at
# ToyAV's 64 px height; x264 without its assembly is stable too, which points at SIMD code reading
# memory nobody wrote), enough to flip a borderline ToyAV clip's motion class. Without the tree every
# write is byte-for-byte the same. The price is file size at equal CRF: a static background gains
# most from the tree (a ToyAV clip grows from 3.4 to 4.7 kB).
H264_OPTIONS = {"x264-params": "mbtree=0"}


# Temp files being written in this process; the command line removes any left by a signal.
_PARTIAL: set = set()
MAX_NUMBERED = 100000


def check_output_path(path, overwrite: bool = False, ext: Optional[str] = ".mp4") -> str:
    """Fail fast, naming the path, on an output name that could not be published: the wrong
    extension, a folder, a missing or read-only folder, or (unless overwrite) an existing file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise MediaError(f"{path} is a folder; give a file name, e.g. {os.path.join(path, 'clip' + (ext or ''))}")
    if ext is not None and os.path.splitext(path)[1].lower() != ext:
        raise MediaError(f"{path}: the output is an {ext[1:]} file, so its name must end in {ext}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MediaError(f"cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MediaError(f"cannot write {path}: the folder {folder} is not writable")
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(f"{path} exists; nothing was overwritten: choose another name or allow "
                                f"overwriting (--overwrite)")
    return path


def partial_path(path) -> str:
    """A new, unique, empty temp file next to `path` (same folder, so publishing is a link, not a copy)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    stem, ext = os.path.splitext(os.path.basename(path))
    while True:
        tmp = os.path.join(folder, f".{stem}.{secrets.token_hex(6)}.part{ext}")
        try:  # O_EXCL: ours alone; mode 0o666 less the umask, as the published file should be (mkstemp gives 0o600)
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        _PARTIAL.add(tmp)
        return tmp


def remove_partial_files() -> None:
    """Remove this process's unfinished temp files (after a signal cut a write short)."""
    for tmp in list(_PARTIAL):
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        _PARTIAL.discard(tmp)


def numbered_path(path, n: int) -> str:
    """name.mp4 -> name-n.mp4: the next names `publish(next_free=True)` tries."""
    stem, ext = os.path.splitext(os.fspath(path))
    return f"{stem}-{n}{ext}"


def _link_new(tmp: str, path: str) -> None:
    """Give `tmp` the name `path` only if no file has it, atomically (FileExistsError otherwise)."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise
    except OSError as e:  # a file system without hard links (FAT, some network shares)
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV):
            raise
    # reserve the name with O_EXCL (fails if it exists), then move the data onto our own placeholder
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    os.replace(tmp, path)


def publish(tmp, path, overwrite: bool = False,
            next_free: Union[bool, Callable[[int], str]] = False) -> str:
    """Give the finished temp file `tmp` its name `path` and return the name it got.

    Never replaces a file unless `overwrite` (then atomically, with os.replace): if `path` exists,
    even one created by another writer a moment ago, OutputExistsError, or with `next_free` the
    first free name of numbered_path(path, 1), (path, 2), ... (or next_free(1), next_free(2), ...).
    `tmp` must be in the same folder (partial_path makes one).
    """
    tmp, path = os.fspath(tmp), os.fspath(path)
    try:
        if os.path.isdir(path):
            raise MediaError(f"{path} is a folder; give a file name")
        if overwrite:
            os.replace(tmp, path)
            return path
        name = (lambda n: numbered_path(path, n)) if next_free is True else next_free
        for n in itertools.count():
            candidate = path if n == 0 else name(n)
            try:
                _link_new(tmp, candidate)
            except FileExistsError:
                if not next_free:
                    raise OutputExistsError(f"{path} was created by another writer while this one was being "
                                            f"written; nothing was overwritten and this output was not saved: "
                                            f"choose another name") from None
                if n >= MAX_NUMBERED:
                    raise OutputExistsError(f"{path} and its {MAX_NUMBERED} numbered names are all taken") from None
                continue
            return candidate
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        _PARTIAL.discard(tmp)


def write_mp4(path, frames, fps, waveform=None, sample_rate: Optional[int] = None, crf: int = 18,
              metadata: Optional[dict] = None, on_frame: Optional[Callable[[], None]] = None,
              overwrite: bool = False, next_free: Union[bool, Callable[[int], str]] = False) -> str:
    """Write frames [T, H, W, 3] (0..1 float or uint8) and a waveform ([S] or [C, S]) as H.264 + AAC mp4.

    The same frames always give the same file (see H264_OPTIONS). The audio is cut or padded to the
    video's duration, so both streams last T / fps seconds; mono and stereo are kept, more channels
    are mixed down to mono. Odd frame sizes are padded to even (H.264 4:2:0 needs it); a sample rate
    AAC lacks is resampled to the next one it has. `metadata` values go into the file's tags (non-
    strings as JSON); `on_frame` is called before each frame is encoded (progress, cancel).

    Written to a unique temp file next to `path`, then published (see `publish`): an existing file
    is never replaced unless `overwrite`, `next_free` picks the next free name, and a failed write
    leaves nothing behind. Returns the name written.
    """
    import av

    check_output_path(path, overwrite=overwrite or bool(next_free))

    frames = torch.as_tensor(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise MediaError(f"frames must be [T, H, W, 3], got {list(frames.shape)}")
    if frames.dtype != torch.uint8:
        frames = (frames.float().clamp(0, 1) * 255).round().to(torch.uint8)
    frames = frames.cpu()
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = F.pad(frames.permute(0, 3, 1, 2), (0, w % 2, 0, h % 2), mode="replicate").permute(0, 2, 3, 1)
    rate = fps if isinstance(fps, Fraction) else Fraction(float(fps)).limit_denominator(1000)
    path = os.fspath(path)
    tmp = partial_path(path)
    try:
        with av.open(tmp, mode="w", format="mp4", options={"movflags": "faststart+use_metadata_tags"}) as out:
            for key, value in (metadata or {}).items():
                out.metadata[key] = value if isinstance(value, str) else json.dumps(value)
            vs = out.add_stream("libx264", rate=rate)
            vs.width, vs.height = frames.shape[2], frames.shape[1]
            vs.pix_fmt = "yuv420p"
            vs.options = {"crf": str(int(crf)), **H264_OPTIONS}
            ast = None
            if waveform is not None:
                wave = torch.as_tensor(waveform, dtype=torch.float32).cpu()
                wave = wave[None] if wave.ndim == 1 else wave
                if wave.shape[0] > 2:
                    wave = wave.mean(0, keepdim=True)
                if sample_rate not in AAC_RATES:
                    import torchaudio.functional as AF

                    target = min((r for r in AAC_RATES if r >= sample_rate), default=AAC_RATES[-1])
                    wave, sample_rate = AF.resample(wave, sample_rate, target), target
                layout = "mono" if wave.shape[0] == 1 else "stereo"
                ast = out.add_stream("aac", rate=sample_rate, layout=layout)
            for i in range(t):
                if on_frame is not None:
                    on_frame()
                frame = av.VideoFrame.from_ndarray(frames[i].contiguous().numpy(), format="rgb24")
                frame.pts = i
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
            if ast is not None:
                wave = fit_length(wave, round(t / rate * sample_rate)).clamp(-1, 1).numpy()
                step = 1024
                for start in range(0, wave.shape[-1], step):
                    chunk = np.ascontiguousarray(wave[:, start:start + step])
                    frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                    frame.sample_rate = sample_rate
                    frame.pts = start
                    for packet in ast.encode(frame):
                        out.mux(packet)
                for packet in ast.encode():
                    out.mux(packet)
        return publish(tmp, path, overwrite=overwrite, next_free=next_free)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        _PARTIAL.discard(tmp)


# What image-to-video (the CLI and CCL Task: Image to Video+Audio) does with cover_crop's lost fraction:
CROP_WARN = 0.02  # a crop cutting away more of the image than this is reported ...
CROP_REFUSED = 0.5  # ... and more than this is refused: the subject would likely be cut away


def cover_crop(image: torch.Tensor, size: Tuple[int, int]) -> Tuple[torch.Tensor, float]:
    """Fit an image ([..., H, W, 3] in 0..1) to `size` (height, width) as image-to-video needs it:
    scaled (bicubic, as Ovi's preprocessing) until it covers the frame, then centre-cropped. Returns
    the fitted image and the fraction of its area the crop cut away (0 when the aspect ratios match),
    so that a caller can warn about (CROP_WARN) or refuse (CROP_REFUSED) a crop that would lose the
    subject."""
    if image.ndim < 3 or image.shape[-1] != 3:
        raise MediaError(f"image must be [..., H, W, 3] (RGB), got {list(image.shape)}")
    h, w = int(image.shape[-3]), int(image.shape[-2])
    th, tw = int(size[0]), int(size[1])
    if min(h, w, th, tw) < 1:
        raise MediaError(f"cannot fit a {w}x{h} image to {tw}x{th}")
    scale = max(th / h, tw / w)
    sh, sw = max(th, round(h * scale)), max(tw, round(w * scale))
    lead = image.shape[:-3]
    x = image.reshape(-1, h, w, 3).permute(0, 3, 1, 2).float()
    if (sh, sw) != (h, w):
        x = F.interpolate(x, size=(sh, sw), mode="bicubic", align_corners=False).clamp(0, 1)
    top, left = (sh - th) // 2, (sw - tw) // 2
    x = x[:, :, top:top + th, left:left + tw].permute(0, 2, 3, 1).reshape(*lead, th, tw, 3)
    return x.to(image.dtype), 1.0 - (th * tw) / (sh * sw)
