"""Writes the small input files of the ToyAV workflows from ToyAV ground truth (committed in workflows/inputs/).

    python tools/make_toyav_inputs.py

- ccl_toyav_a2v_input.wav: the sound of a ToyAV clip (2 s, 16 kHz mono, 16-bit PCM) for toyav_a2v
  (LoadAudio -> CCL Task: Audio to Video);
- ccl_toyav_v2a_input.mp4: a ToyAV clip (2 s, 64x64, 16 fps, H.264 + AAC) for toyav_v2a
  (LoadVideo -> GetVideoComponents -> CCL Task: Video to Audio).

ComfyUI's LoadAudio / LoadVideo read from ComfyUI/input: copy both files there (the integration test does).
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


def main() -> int:
    sys.path.insert(0, ROOT)
    from ccl_core.media import write_mp4
    from ccl_core.toyav import world as w
    from ccl_core.toyav.generator import generate_clip

    os.makedirs(OUT, exist_ok=True)
    for name, (seed, colour, shape, motion) in CLIPS.items():
        clip = generate_clip(seed, colour, shape, motion)
        assert clip.prompt == prompt_of(name)
        path = os.path.join(OUT, name)
        if name.endswith(".wav"):
            write_wav(path, clip.waveform, w.SAMPLE_RATE)
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
