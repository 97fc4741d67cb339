"""Generation from the command line and from Python: mp4 out, a2v / v2a inputs converted, errors."""

import subprocess
import sys
import wave

import numpy as np
import pytest
import torch

from ccl_core.checkpoint import save_checkpoint
from ccl_core.generate import generate
from ccl_core.guidance import Guidance
from ccl_core.media import MediaError, MediaWarning, read_audio, read_video, write_mp4
from ccl_core.model import DualStreamModel
from ccl_core.toyav.autoencoders import AudioAE, VideoAE, save_autoencoder
from ccl_core.toyav.embedded import load_pipeline, toyav_config
from ccl_lab import world
from ccl_lab.generator import generate_clip
from ccl_lab.metrics import load_mp4
from conftest import ROOT


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A random-init model and autoencoders in the shipped formats: tests of plumbing, not quality."""
    d = tmp_path_factory.mktemp("pipe")
    torch.manual_seed(0)
    v, a = VideoAE(), AudioAE()
    save_autoencoder(v, d / "v.safetensors")
    save_autoencoder(a, d / "a.safetensors")
    save_checkpoint(DualStreamModel(toyav_config(v, a)), d / "m.safetensors")
    return d


@pytest.fixture(scope="module")
def pipe(parts):
    return load_pipeline(parts / "m.safetensors", video_ae_path=parts / "v.safetensors",
                         audio_ae_path=parts / "a.safetensors")


def test_t2av_shapes_and_mp4_round_trip(pipe, tmp_path):
    r = generate(pipe, "a red circle bouncing", steps=3)
    assert r.frames.shape == (world.NUM_FRAMES, 64, 64, 3) and r.waveform.shape == (world.NUM_SAMPLES,)
    path = write_mp4(tmp_path / "x.mp4", r.frames, r.fps, r.waveform, r.sample_rate)
    frames, fps, wav, sr = load_mp4(path)
    assert frames.shape[0] == 32 and fps == 16
    assert abs(wav.shape[-1] / sr - frames.shape[0] / fps) <= 1 / fps  # durations within one frame


def test_given_stream_is_kept_in_a2v_and_v2a(pipe):
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(world.NUM_SAMPLES, generator=g) * 0.1
    r = generate(pipe, "a blue square sliding", steps=2, task="a2v", audio=audio)
    assert torch.equal(r.waveform, audio)
    frames = torch.rand(32, 64, 64, 3, generator=g)
    r = generate(pipe, "", steps=2, task="v2a", frames=frames)
    assert torch.equal(r.frames, frames)
    with pytest.raises(ValueError, match="needs an input audio"):
        generate(pipe, "a red circle bouncing", task="a2v")


def test_negative_audio_is_the_audio_towers_own_negative():
    """Ovi's two negatives: `negative_audio` is the audio tower's unconditional text. In the joint form
    the unconditional branch is ctx-only, so in one step (later steps read the other stream's new
    state) the video cannot read it: only the audio changes. (The embedded model: a random-init one
    has zero heads, which no text can move.)"""
    pipe = load_pipeline()
    kw = dict(steps=1, guidance=Guidance("joint", 3.0, 3.0))
    one = generate(pipe, "a red circle bouncing", negative="a blue square", **kw)
    same = generate(pipe, "a red circle bouncing", negative="a blue square", negative_audio="a blue square", **kw)
    two = generate(pipe, "a red circle bouncing", negative="a blue square", negative_audio="a green triangle", **kw)
    torch.testing.assert_close(same.audio_latent, one.audio_latent, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(two.video_latent, one.video_latent, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(two.audio_latent, one.audio_latent, atol=1e-3)


def _write_wav(path, data, rate, channels):
    pcm = (np.clip(data, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


def test_inputs_of_other_formats_are_converted(tmp_path):
    t = np.arange(44100 * 3) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1) * 0.5
    _write_wav(tmp_path / "s.wav", stereo.reshape(-1), 44100, 2)
    with pytest.warns(MediaWarning, match="lasts 3.00 s but the clip is 2 s: only its first 2 s are used"):
        wav = read_audio(tmp_path / "s.wav", 16000, 2.0)
    assert wav.shape == (32000,)
    spectrum = torch.fft.rfft(wav).abs()
    assert abs(int(spectrum.argmax()) / 2.0 - 440) < 2  # same pitch after resampling
    frames = torch.rand(50, 90, 120, 3)
    write_mp4(tmp_path / "v.mp4", frames, 25.0, torch.zeros(25000), 12500)
    video = read_video(tmp_path / "v.mp4", 16, (64, 64), 2.0)
    assert video.shape == (32, 64, 64, 3) and 0 <= video.min() and video.max() <= 1


@pytest.mark.parametrize("size", [(64, 64), (112, 144)])
def test_the_same_frames_always_write_the_same_file(tmp_path, size):
    """x264's macroblock tree made these widths encode differently from one write to the next."""
    frames = torch.as_tensor(generate_clip(0).frames).permute(0, 3, 1, 2)
    frames = torch.nn.functional.interpolate(frames, size=size, mode="bilinear").permute(0, 2, 3, 1)
    frames = (frames + 0.03 * torch.randn(frames.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    written = {open(write_mp4(tmp_path / f"{k}.mp4", frames, 16.0), "rb").read() for k in range(8)}
    assert len(written) == 1


def test_stereo_is_kept_and_a_failed_write_leaves_nothing(tmp_path):
    av = pytest.importorskip("av")
    path = write_mp4(tmp_path / "s.mp4", torch.rand(8, 32, 32, 3), 16.0, torch.zeros(2, 8000) + 0.1, 16000)
    with av.open(path) as c:
        assert c.streams.audio[0].codec_context.layout.name == "stereo"

    def cancel():
        raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        write_mp4(tmp_path / "c.mp4", torch.rand(8, 32, 32, 3), 16.0, on_frame=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mp4"]


def test_unreadable_files_are_named(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    with pytest.raises(MediaError, match="cannot read .*bad.wav"):
        read_audio(bad, 16000)
    with pytest.raises(MediaError, match="file not found"):
        read_video(tmp_path / "missing.mp4", 16, (64, 64))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ccl_core", "generate", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_command_line(parts, tmp_path):
    out = tmp_path / "c.mp4"
    common = ["--model", str(parts / "m.safetensors"), "--steps", "2", "--quiet", "--threads", "1"]
    env_parts = ["--out", str(out)]
    # the CLI uses the shipped autoencoders: skip if they are not installed in this checkout
    from ccl_core.assets import ASSETS, AUDIO_AE_FILE, VIDEO_AE_FILE
    if not (ASSETS / VIDEO_AE_FILE).is_file() or not (ASSETS / AUDIO_AE_FILE).is_file():
        pytest.skip("shipped autoencoders not present")
    r = _cli("--prompt", "a green triangle blinking", *common, *env_parts)
    assert r.returncode == 0, r.stderr
    assert load_mp4(out)[0].shape[0] == 32
    r = _cli("--prompt", "a purple circle bouncing", *common, "--out", str(tmp_path / "d.mp4"))
    assert r.returncode == 2 and "purple" in r.stderr and "red" in r.stderr  # lists the vocabulary
    r = _cli("--prompt", "a red circle bouncing", *common, *env_parts)
    assert r.returncode == 2 and "exists" in r.stderr  # never overwrites
    r = _cli("--task", "a2v", "--audio", str(tmp_path / "nope.wav"), *common, "--out", str(tmp_path / "e.mp4"))
    assert r.returncode == 2 and "file not found" in r.stderr


def test_generate_many_matches_one_clip_at_a_time(pipe):
    from ccl_core.generate import generate_many
    prompts, seeds = ["a red circle bouncing", "a blue square sliding"], [3, 7]
    many = generate_many(pipe, prompts, seeds, steps=2)
    for prompt, seed, got in zip(prompts, seeds, many):
        one = generate(pipe, prompt, seed=seed, steps=2)
        assert torch.allclose(one.video_latent, got.video_latent, atol=1e-4)
        assert torch.allclose(one.frames, got.frames, atol=1e-3)
        assert torch.allclose(one.waveform, got.waveform, atol=1e-3)
    assert not torch.allclose(many[0].video_latent, many[1].video_latent)
    with pytest.raises(ValueError, match="one seed per prompt"):
        generate_many(pipe, prompts, [0], steps=2)


def test_toyav_evaluation_scores_held_out_conditioned_clips(pipe):
    from ccl_lab.evaluate import conditioned_scores, t2av_scores
    scores = conditioned_scores(pipe, "v2a", 2, steps=2)
    assert len(scores) == 2 and all(s["colour_ok"] for s in scores)  # the given picture is the ground truth's
    assert len(t2av_scores(pipe, 0, steps=1)) == len(world.PROMPTS)
    with pytest.raises(ValueError, match="'a2v' or 'v2a'"):
        conditioned_scores(pipe, "t2av", 1)
    through_mp4 = conditioned_scores(pipe, "v2a", 2, via_mp4=True, steps=2)
    assert [s["colour_ok"] for s in through_mp4] == [True, True] and through_mp4[0].keys() == scores[0].keys()


def test_a_ground_truth_clip_scores_full_marks_through_the_mp4_writer():
    from ccl_core.generate import Result
    from ccl_lab.evaluate import score_result
    clip = generate_clip(3)
    r = Result(torch.from_numpy(clip.frames), torch.from_numpy(clip.waveform), float(world.FPS), world.SAMPLE_RATE,
               None, None)
    for via_mp4 in (False, True):
        s = score_result(r, clip.prompt, via_mp4)
        assert (s["recall"], s["precision"], s["colour_ok"], s["pitch_ok"], s["motion_ok"]) == (1.0, 1.0, True, True, True)
        assert s["median_offset_ms"] <= 1000 / world.FPS / 2
