"""Reading and writing media: mp4 out (H.264 + AAC), audio and video in, converted to what a model takes.

Inputs of another sample rate, channel count, frame size or frame rate are converted (torchaudio
resamples audio), never rejected for that alone; a file that cannot be decoded gets one clear error.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from typing import Callable, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F


class MediaError(ValueError):
    """A media file that cannot be read or written, with the reason."""


def _open(path):
    import av

    if not os.path.isfile(path):
        raise MediaError(f"file not found: {path}")
    try:
        return av.open(os.fspath(path))
    except Exception as e:  # PyAV raises many kinds (InvalidDataError, FFmpegError, ...)
        raise MediaError(f"cannot read {path}: {e}") from None


def read_audio(path, sample_rate: int, seconds: Optional[float] = None) -> torch.Tensor:
    """Mono float waveform [S] at `sample_rate` (down-mixed and resampled), cut or zero-padded to `seconds`."""
    import torchaudio.functional as AF

    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
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
        except Exception as e:
            raise MediaError(f"cannot decode the audio of {path}: {e}") from None
        src_rate = stream.rate or stream.codec_context.sample_rate
    if not chunks:
        raise MediaError(f"{path} has an empty audio stream")
    wave = torch.from_numpy(np.concatenate(chunks, axis=1)).mean(0)  # down-mix
    if src_rate != sample_rate:
        wave = AF.resample(wave, src_rate, sample_rate)
    if seconds is not None:
        wave = fit_length(wave, round(seconds * sample_rate))
    return wave


def read_video(path, fps: float, size: Tuple[int, int], seconds: Optional[float] = None) -> torch.Tensor:
    """Frames [T, H, W, 3] in 0..1 at `fps` and `size` (H, W), cut or padded (last frame held)."""
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path} has no video stream")
        stream = container.streams.video[0]
        frames, times = [], []
        try:
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else len(times) / float(stream.average_rate or fps)
                if seconds is not None and times and t - times[0] > seconds + 1.0 / fps:
                    break  # past the part that is kept: a long file is not decoded whole
                frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
                times.append(t)
        except Exception as e:
            raise MediaError(f"cannot decode the video of {path}: {e}") from None
    if not frames:
        raise MediaError(f"{path} has no video frames")
    x = torch.stack(frames).float().div(255.0)  # [N, h, w, 3]
    t0 = times[0]
    times = torch.tensor([t - t0 for t in times])
    count = len(frames) if seconds is None else round(seconds * fps)
    if seconds is None:
        count = max(1, round(float(times[-1]) * fps) + 1)
    want = torch.arange(count) / fps
    # nearest earlier source frame for each output time (frame-rate conversion)
    idx = (torch.searchsorted(times, want + 1e-6, right=True) - 1).clamp(0, len(frames) - 1)
    x = x[idx]
    if tuple(x.shape[1:3]) != tuple(size):
        x = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear", antialias=True,
                          align_corners=False).permute(0, 2, 3, 1).clamp(0, 1)
    return x


def fit_length(wave: torch.Tensor, samples: int) -> torch.Tensor:
    """Cut or zero-pad the last dim to `samples`."""
    if wave.shape[-1] >= samples:
        return wave[..., :samples]
    return F.pad(wave, (0, samples - wave.shape[-1]))


AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


# With x264's macroblock tree (its default rate control across frames) the same frames encode to a
# slightly different picture from one write to the next (seen at most widths from 32 to 416 px at
# ToyAV's 64 px height; x264 without its assembly is stable too, which points at SIMD code reading
# memory nobody wrote), enough to flip a borderline ToyAV clip's motion class. Without the tree every
# write is byte-for-byte the same. The price is file size at equal CRF: a static background gains
# most from the tree (a ToyAV clip grows from 3.4 to 4.7 kB).
H264_OPTIONS = {"x264-params": "mbtree=0"}


def write_mp4(path, frames, fps, waveform=None, sample_rate: Optional[int] = None, crf: int = 18,
              metadata: Optional[dict] = None, on_frame: Optional[Callable[[], None]] = None) -> str:
    """Write frames [T, H, W, 3] (0..1 float or uint8) and a waveform ([S] or [C, S]) as H.264 + AAC mp4.

    The same frames always give the same file (see H264_OPTIONS). The audio is cut or padded to the
    video's duration, so both streams last T / fps seconds; mono and stereo are kept, more channels
    are mixed down to mono. Odd frame sizes are padded to even (H.264 4:2:0 needs it); a sample rate
    AAC lacks is resampled to the next one it has. `metadata` values go into the file's tags (non-
    strings as JSON); `on_frame` is called before each frame is encoded (progress, cancel). Written
    to a temp name, then renamed: a failed write leaves nothing behind.
    """
    import av

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
    tmp = path + ".part.mp4"
    try:
        with av.open(tmp, mode="w", options={"movflags": "faststart+use_metadata_tags"}) as out:
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
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
