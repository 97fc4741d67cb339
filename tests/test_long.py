"""Clips of any length, extension windows, long clips in windows and image-to-audio-video, from Python
and the command line (a random-init model on the shipped autoencoders: plumbing, not quality)."""

import struct
import zlib

import numpy as np
import pytest
import torch

from ccl_core.__main__ import main
from ccl_core.assets import ASSETS, AUDIO_AE_FILE, VIDEO_AE_FILE
from ccl_core.checkpoint import save_checkpoint
from ccl_core.extension import continuation
from ccl_core.generate import clip_lengths, generate, generate_long, window_plan, window_seed
from ccl_core.media import MediaError, read_image
from ccl_core.model import DualStreamModel
from ccl_core.toyav.embedded import load_pipeline, toyav_config
from ccl_lab import world
from ccl_lab.generator import generate_clip
from ccl_lab.metrics import classify_shape, load_mp4, score_clip

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPT = "a red circle bouncing"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    if not (ASSETS / VIDEO_AE_FILE).is_file() or not (ASSETS / AUDIO_AE_FILE).is_file():
        pytest.skip("shipped autoencoders not present")
    from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("long") / "m.safetensors"
    save_checkpoint(DualStreamModel(toyav_config(load_video_ae(), load_audio_ae())), path)
    return path


@pytest.fixture(scope="module")
def pipe(model_file):
    return load_pipeline(model_file)


def test_any_length_rounds_to_whole_latent_frames_and_native_is_the_default(pipe):
    assert clip_lengths(pipe) == (16, 125)  # 2 s: 16 latent frames at 8 fps, 125 audio latents at 62.5/s
    assert clip_lengths(pipe, 8.0) == (64, 500)
    assert clip_lengths(pipe, 2.5) == (20, 156)  # 156.25 audio latents: the nearest
    with pytest.warns(UserWarning, match="the clip lasts 2.25 s"):
        assert clip_lengths(pipe, 2.3)[0] == 18
    native = generate(pipe, PROMPT, steps=1)
    same = generate(pipe, PROMPT, steps=1, seconds=2.0)
    assert torch.equal(native.frames, same.frames) and torch.equal(native.waveform, same.waveform)
    r = generate(pipe, PROMPT, steps=1, seconds=3.0)
    assert r.frames.shape[0] == 48 and r.waveform.shape[0] == 48000
    for bad in (0, -1, float("nan"), "2"):
        with pytest.raises(ValueError, match="seconds must be a number > 0"):
            generate(pipe, PROMPT, steps=1, seconds=bad)
    with pytest.raises(ValueError, match="at most 64 .*in windows instead"):
        generate(pipe, PROMPT, steps=1, seconds=65)
    with pytest.raises(ValueError, match="the audio has 32000 samples but the clip takes 48000;"):
        generate(pipe, PROMPT, steps=1, seconds=3.0, task="a2v", audio=torch.zeros(32000))


def test_an_extension_window_holds_the_clip_tail_and_continues_its_timeline(pipe):
    clip = generate(pipe, PROMPT, steps=1, seconds=2.5)
    window = generate(pipe, PROMPT, steps=2, seed=1, extend=(clip.video_latent, clip.audio_latent), overlap=0.5)
    cont = continuation(clip.video_latent, clip.audio_latent, 4, 8.0, 62.5)
    assert cont.video_start == 16 and cont.audio_start == 125
    assert torch.equal(window.video_latent[:, :, :4], clip.video_latent[:, :, 16:])
    assert torch.equal(window.audio_latent[:, :, :31], clip.audio_latent[:, :, 125:])
    # the 2 s window ends at 16 + 16 latent frames = 4 s, whose audio latent on the clip's timeline is 250
    assert window.video_latent.shape[2] == 16 and window.audio_latent.shape[2] == 250 - 125
    assert not torch.equal(window.video_latent[:, :, 4:], clip.video_latent[:, :, :12])
    again = generate(pipe, PROMPT, steps=2, seed=1, extend=cont)
    assert torch.equal(again.video_latent, window.video_latent)
    with pytest.raises(ValueError, match="task 'a2v' cannot be combined"):
        generate(pipe, PROMPT, steps=1, task="a2v", audio=torch.zeros(32000), extend=cont)
    with pytest.raises(ValueError, match="overlap is only used with extend"):
        generate(pipe, PROMPT, steps=1, overlap=0.5)
    with pytest.raises(ValueError, match="do not pass overlap too"):
        generate(pipe, PROMPT, steps=1, extend=cont, overlap=0.5)
    with pytest.raises(ValueError, match="needs overlap="):
        generate(pipe, PROMPT, steps=1, extend=(clip.video_latent, clip.audio_latent))
    with pytest.raises(ValueError, match="overlap must be 1..19 latent video frames"):
        generate(pipe, PROMPT, steps=1, extend=(clip.video_latent, clip.audio_latent), overlap=3.0)
    with pytest.raises(ValueError, match="longer than the overlap"):
        generate(pipe, PROMPT, steps=1, seconds=0.5, extend=cont)


def test_a_long_clip_is_its_windows_joined(pipe):
    assert window_plan(pipe, 10, 2.5, 0.5) == [(0, 20), (16, 20), (32, 20), (48, 20), (64, 16)]
    assert window_plan(pipe, 4, None, 1.0) == [(0, 16), (8, 16), (16, 16)]
    assert window_plan(pipe, 3.5, 2.5, 0.5, start=16) == [(12, 16)]
    with pytest.raises(ValueError, match="must be shorter than the window"):
        window_plan(pipe, 10, 1.0, 1.0)
    with pytest.raises(ValueError, match="not longer than the overlap"):
        window_plan(pipe, 10, 2.0, 0.5, start=4)
    assert window_seed(7, 0) == 7 and len({window_seed(7, i) for i in range(5)}) == 5

    long = generate_long(pipe, PROMPT, 5.0, window=2.5, overlap=0.5, steps=2, seed=3)
    assert long.frames.shape[0] == 80 and long.waveform.shape[0] == 80000
    assert long.video_latent.shape[2] == 40 and long.audio_latent.shape[2] == 312  # round(40 * 62.5 / 8)
    first = generate(pipe, PROMPT, steps=2, seed=3, seconds=2.5)  # window 0 is the plain clip of the seed
    assert torch.equal(long.video_latent[:, :, :20], first.video_latent)
    assert torch.equal(long.audio_latent[:, :, :156], first.audio_latent)
    steps = []
    generate_long(pipe, PROMPT, 4.0, window=2.0, overlap=0.5, steps=1, progress=lambda i, n, x: steps.append((i, n)))
    assert steps == [(0, 3), (1, 3), (2, 3)]  # windows of 2 s, 2 s (from 1.5 s) and 1 s (from 3 s)


def test_i2av_holds_the_image_as_the_first_frame_in_short_and_long_clips(pipe):
    image = torch.from_numpy(generate_clip(4, colour="blue", shape="square", motion="sliding").frames[0])
    r = generate(pipe, PROMPT, steps=2, task="i2av", image=image)
    held = pipe.video_ae.decode(pipe.video_ae.encode(image.expand(2, -1, -1, -1)[None]))[0, 0]
    assert torch.allclose(r.frames[0], held, atol=1e-5)
    psnr = 10 * torch.log10(1 / torch.mean((r.frames[0] - image) ** 2))
    assert psnr > 25  # the shipped autoencoder's reconstruction of a still frame
    assert classify_shape(r.frames[:1].numpy()) == "square"
    long = generate_long(pipe, PROMPT, 3.0, window=2.0, overlap=0.5, steps=1, task="i2av", image=image)
    assert torch.allclose(long.frames[0], held, atol=1e-5)
    with pytest.raises(ValueError, match="task 'i2av' cannot be combined"):
        generate_long(pipe, PROMPT, 3.0, window=2.0, steps=1, task="i2av", image=image,
                      clip=(r.video_latent, r.audio_latent))


def test_ground_truth_of_any_length_scores_full_marks():
    assert generate_clip(5).frames.shape[0] == world.NUM_FRAMES  # the world's own clips
    for motion in world.MOTIONS:
        clip = generate_clip(11, motion=motion, seconds=8.0)
        assert clip.frames.shape[0] == 128 and clip.waveform.shape[0] == 128_000 and clip.centroids.shape[0] == 128
        assert max(clip.events) > 6.0  # events over the whole clip, not only its first 2 s
        s = score_clip(clip.frames, world.FPS, clip.waveform, world.SAMPLE_RATE, clip.prompt)
        assert (s["recall"], s["precision"], s["motion_ok"], s["pitch_ok"]) == (1.0, 1.0, True, True), s
    with pytest.raises(ValueError, match="must last over"):
        generate_clip(0, seconds=0.25)


def test_shapes_are_told_apart_by_area():
    found = {(c.shape, classify_shape(c.frames)) for c in map(generate_clip, range(24))}
    assert {shape for shape, _ in found} == set(world.SHAPES) and all(a == b for a, b in found)


def _png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_read_image_and_its_errors(tmp_path):
    rgb = (np.random.default_rng(0).random((30, 50, 3)) * 255).astype(np.uint8)
    _png(tmp_path / "x.png", rgb)
    assert torch.equal((read_image(tmp_path / "x.png") * 255).round().byte(), torch.from_numpy(rgb))
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(MediaError, match="cannot decode the image .*bad.png"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(MediaError, match="file not found"):
        read_image(tmp_path / "none.png")


def _main(capsys, *args):
    code = main(["generate", "--quiet", "--threads", "1", "--steps", "1", *[str(a) for a in args]])
    return code, capsys.readouterr().err


def test_command_line_lengths_windows_extension_and_images(capsys, model_file, tmp_path):
    m = ["--model", model_file, "--prompt", PROMPT]
    assert _main(capsys, *m, "--seconds", 3, "--out", tmp_path / "a.mp4")[0] == 0
    assert load_mp4(tmp_path / "a.mp4")[0].shape[0] == 48
    assert _main(capsys, *m, "--seconds", 5, "--window", 2, "--overlap", 0.5, "--out", tmp_path / "l.mp4")[0] == 0
    assert load_mp4(tmp_path / "l.mp4")[0].shape[0] == 80
    before = (tmp_path / "a.mp4").read_bytes()
    assert _main(capsys, *m, "--extend", tmp_path / "a.mp4", "--out", tmp_path / "e.mp4")[0] == 0
    frames, _, wave, rate = load_mp4(tmp_path / "e.mp4")
    given = load_mp4(tmp_path / "a.mp4")[0]
    assert frames.shape[0] == 48 + 24 and (tmp_path / "a.mp4").read_bytes() == before  # 1.5 s added, input kept
    assert np.abs(frames[:48].astype(int) - given.astype(int)).mean() < 3  # the input's own frames come first
    assert abs(wave.shape[0] / rate - 4.5) < 0.05
    _png(tmp_path / "i.png", (np.random.default_rng(1).random((40, 80, 3)) * 255).astype(np.uint8))
    code, err = _main(capsys, *m, "--task", "i2av", "--image", tmp_path / "i.png", "--out", tmp_path / "i.mp4")
    assert code == 0 and "centre crop cuts away 50% of the image" in err


def test_command_line_image_crop_warns_and_refuses_at_the_nodes_limits(capsys, model_file, tmp_path):
    """media.CROP_WARN (2 %) and CROP_REFUSED (50 %), as CCL Task: Image to Video+Audio has them."""
    import warnings
    from ccl_core.__main__ import _read_image
    from ccl_core.media import MediaWarning

    for name, width in (("slight", 65), ("wide", 72), ("strip", 160)):  # 64 high, for the 64x64 clip
        _png(tmp_path / f"{name}.png", np.zeros((64, width, 3), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _read_image(tmp_path / "slight.png", (64, 64)).shape == (64, 64, 3)  # 1.5 % cut: silent
    with pytest.warns(MediaWarning, match=r"is 72x64, the clip 64x64: the centre crop cuts away 11% of the image"):
        _read_image(tmp_path / "wide.png", (64, 64))
    code, err = _main(capsys, "--model", model_file, "--prompt", PROMPT, "--task", "i2av",
                      "--image", tmp_path / "strip.png", "--out", tmp_path / "s.mp4")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert "is 160x64, the clip 64x64: the centre crop would cut away 60% of the image (more than 50%)" in err
    assert not (tmp_path / "s.mp4").exists()


@pytest.mark.parametrize("args, message", [
    (["--task", "i2av"], r"--task i2av needs --image FILE"),
    (["--image", "x.png"], r"--image is only used by --task i2av"),
    (["--seconds", "0"], r"--seconds must be a number of seconds > 0"),
    (["--seconds", "nan"], r"--seconds must be a number of seconds > 0"),
    (["--overlap", "0.5"], r"--overlap is only used with --window"),
    (["--window", "2"], r"--window makes a long clip in windows: give its length with --seconds"),
    (["--seconds", "2", "--window", "2"], r"--seconds 2 fits in one --window of 2 s"),
    (["--seconds", "8", "--window", "2", "--overlap", "2"], r"--overlap \(2 s\) must be shorter than --window"),
    (["--task", "a2v", "--audio", "x.wav", "--seconds", "8", "--window", "2"], r"--task a2v cannot be combined"),
    (["--extend", "missing.mp4"], r"--extend: file not found: missing.mp4"),
    (["--task", "i2av", "--image", "x.png", "--extend", "x.mp4"], r"--task i2av cannot be combined"),
])
def test_cli_bad_combinations_are_refused_in_one_line(capsys, tmp_path, args, message):
    code, err = _main(capsys, "--prompt", PROMPT, "--out", tmp_path / "x.mp4", *args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert __import__("re").search(message, err), err


def test_cli_never_writes_over_the_clip_it_extends(capsys, tmp_path):
    clip = tmp_path / "c.mp4"
    clip.write_bytes(b"precious")
    code, err = _main(capsys, "--prompt", PROMPT, "--extend", clip, "--out", clip, "--overwrite")
    assert code == 2 and "is the clip being extended" in err and clip.read_bytes() == b"precious"


def test_the_seam_and_i2av_measures_pass_ground_truth_and_catch_a_cut():
    from ccl_lab.evaluate import i2av_follows, i2av_image, near, seam_continuity
    clip = generate_clip(21, colour="green", shape="circle", motion="sliding", seconds=4.0)
    s = seam_continuity(clip.frames, world.FPS, clip.waveform, world.SAMPLE_RATE, 32)
    assert s["jump_px"] <= s["ordinary_step_p95_px"] + 1e-6 and s["pitch_same"] is True
    other = generate_clip(22, colour="blue", shape="circle", motion="sliding", seconds=4.0)
    frames = np.concatenate([clip.frames[:32], other.frames[32:]])  # a cut: another object, another pitch
    wave = np.concatenate([clip.waveform[:32000], other.waveform[32000:]])
    cut = seam_continuity(frames, world.FPS, wave, world.SAMPLE_RATE, 32)
    assert cut["pitch_same"] is False
    score = score_clip(clip.frames, world.FPS, clip.waveform, world.SAMPLE_RATE, clip.prompt)
    assert near(score, 2.0, 4.0) == {"events": len(score["picture_events"]), "matched": len(score["picture_events"])}
    image_clip = i2av_image(3)
    follows = i2av_follows(image_clip.frames, world.FPS, image_clip.frames[0], image_clip, 2)
    assert follows["follows"], follows
    moved = np.roll(image_clip.frames, 20, axis=2)  # the same object 20 px to the right
    off = i2av_follows(moved, world.FPS, image_clip.frames[0], image_clip, 2)
    assert not off["start_ok"] and off["start_frame"] == 2
    assert np.allclose(np.subtract(off["start_at_px"], off["image_at_px"]), [20, 0], atol=0.1)  # where it went
