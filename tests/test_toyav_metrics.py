"""ToyAV metrics: the generator's own clips score perfectly, broken ones do not.

Ground truth scores a median offset well under a millisecond, not exactly 0: an onset is
placed at the first sample that stands out of the -50 dBFS noise, which a burst reaches a
fraction of a millisecond after it starts (about 0.2 ms for impacts, up to 1 ms for the 5 ms
blink fade). The tests allow 2 ms.
"""

import math

import av
import numpy as np
import pytest

from ccl_lab import generator as gen
from ccl_lab import metrics as m
from ccl_lab import world as w

FPS, SR = w.FPS, w.SAMPLE_RATE


@pytest.fixture(scope="module")
def truth():
    """One ground-truth clip per prompt."""
    return [gen.generate_clip(100 + i, *w.parse_prompt(p)) for i, p in enumerate(w.PROMPTS)]


def _score(clip, waveform=None, prompt=None, frames=None):
    return m.score_clip(clip.frames if frames is None else frames, FPS,
                        clip.waveform if waveform is None else waveform, SR, prompt or clip.prompt)


def test_ground_truth_scores_perfectly_on_all_prompts(truth):
    scores = [_score(clip) for clip in truth]
    for clip, score in zip(truth, scores):
        assert score["median_offset_ms"] < 2.0, clip.prompt
        assert score["recall"] == score["precision"] == 1.0, clip.prompt
        assert score["colour_ok"] and score["pitch_ok"] and score["motion_ok"], clip.prompt
    summary = m.aggregate(scores)
    assert summary["clips"] == 36 and summary["median_offset_ms"] < 1.0
    assert summary["recall"] == summary["precision"] == 1.0
    assert summary["colour_accuracy"] == summary["pitch_accuracy"] == summary["motion_accuracy"] == 1.0


def test_events_and_onsets_match_the_exact_times(truth):
    for clip in truth:
        score = _score(clip)
        onsets = np.array(score["sound_onsets"])
        events = np.array(clip.events)
        assert len(onsets) == len(events), clip.prompt
        assert np.all((onsets - events >= 0.0) & (onsets - events < 0.0015)), clip.prompt
        for early, late in score["picture_events"]:
            nearest = events[np.argmin(np.abs(events - early))]
            if clip.motion == "blinking":  # between the last frame without and the first with it
                assert late - early == pytest.approx(1 / FPS) and early < nearest <= late
            else:
                assert early == late and abs(early - nearest) < 0.001, clip.prompt


def test_pitch_estimates(truth):
    for clip in truth:
        assert m.fundamental_hz(clip.waveform, SR) == pytest.approx(w.COLOURS[clip.colour].pitch_hz, rel=0.002)


@pytest.mark.parametrize("motion", ["bouncing", "sliding"])
def test_audio_late_by_120_ms_loses_sync(motion):
    late = round(0.120 * SR)
    for seed in range(4):
        clip = gen.generate_clip(seed, "red", "circle", motion)
        noise = np.random.default_rng(seed).normal(0.0, w.NOISE_RMS, late)
        score = _score(clip, np.concatenate([noise, clip.waveform[:-late]]))
        assert score["recall"] == 0.0
        assert score["median_offset_ms"] == pytest.approx(120.0, abs=2.0)
        assert score["pitch_ok"] and score["motion_ok"]


def test_wrong_pitch_fails_pitch_only():
    red = gen.generate_clip(9, "red", "triangle", "bouncing")
    green = gen.generate_clip(9, "green", "triangle", "bouncing")  # same seed: same physics
    score = _score(red, waveform=green.waveform)
    assert not score["pitch_ok"] and score["colour_ok"] and score["motion_ok"]
    assert score["recall"] == score["precision"] == 1.0


def test_prompt_mismatch_fails_colour_and_motion():
    clip = gen.generate_clip(2, "blue", "square", "sliding")
    score = _score(clip, prompt="a yellow square bouncing")
    assert not score["colour_ok"] and not score["motion_ok"] and not score["pitch_ok"]
    assert score["colour"] == "blue" and score["motion"] == "sliding"


def test_empty_picture_or_silence_do_not_crash():
    clip = gen.generate_clip(1, "green", "circle", "bouncing")
    blank = np.full_like(clip.frames, 0.08)
    silence = np.zeros_like(clip.waveform)

    nothing = _score(clip, waveform=silence, frames=blank)
    assert nothing["motion"] == "none" and nothing["colour"] is None and not nothing["pitch_ok"]
    assert math.isnan(nothing["recall"]) and math.isnan(nothing["precision"])
    assert math.isnan(nothing["median_offset_ms"])

    mute = _score(clip, waveform=silence)
    assert mute["recall"] == 0.0 and math.isnan(mute["precision"])

    unseen = _score(clip, frames=blank)
    assert math.isnan(unseen["recall"]) and unseen["precision"] == 0.0

    summary = m.aggregate([nothing, mute, unseen])
    assert summary["recall"] == 0.0 and summary["precision"] == 0.0
    assert math.isnan(summary["median_offset_ms"])


def test_still_object_is_not_a_motion():
    clip = gen.generate_clip(1, "green", "circle", "bouncing")
    still = np.repeat(clip.frames[:1], len(clip.frames), axis=0)
    score = _score(clip, frames=still)
    assert score["motion"] == "static" and score["picture_events"] == []


def test_accepts_uint8_frames_torch_tensors_and_comfy_audio_at_another_rate():
    torch = pytest.importorskip("torch")
    torchaudio = pytest.importorskip("torchaudio")
    clip = gen.generate_clip(6, "yellow", "square", "sliding")
    frames = torch.from_numpy(np.round(clip.frames * 255).astype(np.uint8))
    audio = torchaudio.functional.resample(torch.from_numpy(clip.waveform), SR, 44100)[None, None]
    score = m.score_clip(frames, FPS, audio, 44100, clip.prompt)
    assert score["median_offset_ms"] < 2.0 and score["recall"] == score["precision"] == 1.0
    assert score["colour_ok"] and score["pitch_ok"] and score["motion_ok"]


def _write_mp4(path, clip):
    """H.264 (yuv420p, default quality) and AAC, as a user's video pipeline would save it."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width = video.height = w.FRAME_SIZE
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=SR)
        audio.layout = "mono"
        audio.bit_rate = 64_000
        for image in np.round(clip.frames * 255).astype(np.uint8):
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode())
        sound = av.AudioFrame.from_ndarray(clip.waveform[None], format="flt", layout="mono")
        sound.rate, sound.pts = SR, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode())


@pytest.mark.parametrize("prompt", ["a red circle bouncing", "a blue triangle sliding",
                                    "a yellow square blinking"])
def test_mp4_round_trip_still_scores_well(tmp_path, prompt):
    clip = gen.generate_clip(21, *w.parse_prompt(prompt))
    path = tmp_path / "clip.mp4"
    _write_mp4(path, clip)
    frames, fps, waveform, sample_rate = m.load_mp4(path)
    assert frames.shape == (32, 64, 64, 3) and frames.dtype == np.uint8
    assert fps == FPS and sample_rate == SR and len(waveform) >= w.NUM_SAMPLES
    score = m.score_clip(frames, fps, waveform, sample_rate, prompt)
    assert score["median_offset_ms"] < 5.0
    assert score["recall"] == score["precision"] == 1.0
    assert score["colour_ok"] and score["pitch_ok"] and score["motion_ok"]


def test_motion_steps_tell_smooth_motion_from_motion_in_latent_frame_steps():
    clip = gen.generate_clip(5, "red", "square", "sliding")
    smooth = m.motion_steps(clip.frames, 2)
    steps = len(clip.frames) - 1  # the object is seen in every frame of a slide
    assert (len(smooth["within"]), len(smooth["across"])) == ((steps + 1) // 2, steps // 2)
    assert np.mean(smooth["across"]) == pytest.approx(np.mean(smooth["within"]), rel=0.05)
    assert smooth["first"] == [smooth["across"][0]]
    # the same clip drawn once per latent frame: each pair of frames shows the pair's first one
    stepped = m.motion_steps(np.repeat(clip.frames[::2], 2, axis=0), 2)
    assert max(stepped["within"]) < 0.01 and np.mean(stepped["across"]) == pytest.approx(
        2 * np.mean(smooth["across"]), rel=0.05)
