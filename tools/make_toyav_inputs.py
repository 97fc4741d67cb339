"""Writes the small input files of the ToyAV workflows from ToyAV ground truth (committed in workflows/inputs/).

    python tools/make_toyav_inputs.py

- ccl_toyav_a2v_input.wav: the sound of a ToyAV clip (2 s, 16 kHz mono, 16-bit PCM) for toyav_a2v
  (LoadAudio -> CCL Task: Audio to Video);
- ccl_toyav_v2a_input.mp4: a ToyAV clip (2 s, 64x64, 16 fps, H.264 + AAC) for toyav_v2a
  (LoadVideo -> GetVideoComponents -> CCL Task: Video to Audio);
- ccl_toyav_i2av_input.png: the first frame of a ToyAV clip (64x64 RGB) for toyav_i2av and toyav_extend
  (LoadImage -> CCL Task: Image to Video+Audio).

ComfyUI's LoadAudio / LoadVideo / LoadImage read from ComfyUI/input: copy the files there (the integration
test does).
The clips are fixed by (seed, colour, shape, motion) below; the prompts the workflows use are theirs.
"""

from __future__ import annotations

import os
import sys
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "workflows", "inputs")
# file -> (seed, colour, shape, motion); the workflows' prompts are "a {colour} {shape} {motion}"
CLIPS = {
    "ccl_toyav_a2v_input.wav": (7, "blue", "square", "bouncing"),
    "ccl_toyav_v2a_input.mp4": (11, "yellow", "triangle", "sliding"),
    "ccl_toyav_i2av_input.png": (3, "green", "circle", "bouncing"),
}
MAX_BYTES = 200_000


def prompt_of(name: str) -> str:
    _, colour, shape, motion = CLIPS[name]
    return f"a {colour} {shape} {motion}"


def write_wav(path: str, samples: np.ndarray, rate: int) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


def write_png(path: str, image: np.ndarray) -> None:
    """[H, W, 3] in 0..1 -> an 8-bit RGB PNG (zlib and the PNG chunk layout; no imaging library needed)."""
    import struct
    import zlib

    rgb = (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    rows = b"".join(b"\x00" + row.tobytes() for row in rgb)  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", rgb.shape[1], rgb.shape[0], 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
                + chunk(b"IEND", b""))


def main() -> int:
    sys.path.insert(0, ROOT)
    from ccl_core.media import write_mp4
    from ccl_lab import world as w
    from ccl_lab.generator import generate_clip

    os.makedirs(OUT, exist_ok=True)
    for name, (seed, colour, shape, motion) in CLIPS.items():
        clip = generate_clip(seed, colour, shape, motion)
        assert clip.prompt == prompt_of(name)
        path = os.path.join(OUT, name)
        if name.endswith(".wav"):
            write_wav(path, clip.waveform, w.SAMPLE_RATE)
        elif name.endswith(".png"):
            write_png(path, np.asarray(clip.frames[0]))
        else:
            write_mp4(path, clip.frames, w.FPS, clip.waveform, w.SAMPLE_RATE, crf=18, overwrite=True)
        size = os.path.getsize(path)
        print(f"{path}: {size} bytes, '{clip.prompt}', events at {[round(t, 3) for t in clip.events]} s")
        if size > MAX_BYTES:
            print(f"  larger than {MAX_BYTES} bytes", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
