"""ToyAV autoencoders and text encoder: the shipped files, on held-out clips (docs/TOYAV-AUTOENCODERS.md)."""

import numpy as np
import pytest
import torch

from ccl_core.assets import ASSETS, AUDIO_AE_FILE, TEXT_FILE, VIDEO_AE_FILE
from ccl_lab import metrics as m
from ccl_lab import world as w
from ccl_core.toyav.autoencoders import (AudioAE, AudioAEConfig, VideoAE, VideoAEConfig, load_audio_ae, load_autoencoder,
                                         load_video_ae, read_metadata, save_autoencoder)
from ccl_core.toyav.text import MAX_TOKENS, VOCAB, ToyAVTextEncoder, load_text_encoder, save_text_encoder
from ccl_lab.generator import generate_clip
from ccl_lab.train_autoencoders import heldout_seeds, onset_errors_ms, psnr, training_seeds

SHIPPED = [ASSETS / VIDEO_AE_FILE, ASSETS / AUDIO_AE_FILE, ASSETS / TEXT_FILE]
# Held-out clips (seeds >= 2**32, never used in training; not the ones the training command
# reports on either), two per motion.
HELD = heldout_seeds(6, start=900)


@pytest.fixture(scope="module")
def video_ae():
    return load_video_ae()


@pytest.fixture(scope="module")
def audio_ae():
    return load_audio_ae()


@pytest.fixture(scope="module")
def many_held_clips():
    return [generate_clip(s) for s in heldout_seeds(24, start=1000)]


@pytest.fixture(scope="module")
def held_clips():
    clips = [generate_clip(s, motion=mo) for s, mo in zip(HELD, list(w.MOTIONS) * 2)]
    assert not set(training_seeds(0, 1500)) & set(HELD)
    return clips


# ---------------------------------------------------------------------------------- shipped files
def test_shipped_files_exist_and_are_small():
    sizes = [p.stat().st_size for p in SHIPPED]
    assert sum(sizes) < 8 * 2**20, sizes
    assert read_metadata(SHIPPED[0])["format"] == "ccl-toyav-video-ae"
    assert read_metadata(SHIPPED[1])["format"] == "ccl-toyav-audio-ae"


# ---------------------------------------------------------------------------------- video
def test_video_shapes_and_rates(video_ae, held_clips):
    assert video_ae.latent_channels == 8 and video_ae.video_latent_fps == 8.0
    assert video_ae.temporal_factor == 2 and video_ae.spatial_factor == 8
    assert video_ae.latent_shape() == (8, 16, 8, 8)
    x = torch.from_numpy(held_clips[0].frames)[None]  # [1, 32, 64, 64, 3]
    with torch.no_grad():
        z = video_ae.encode(x)
        assert z.shape == (1, 8, 16, 8, 8)
        assert torch.allclose(video_ae.encode(x.permute(0, 4, 1, 2, 3)), z)  # [B, 3, T, H, W] too
        x8 = (x * 255).round().to(torch.uint8)
        assert torch.equal(video_ae.encode(x8), video_ae.encode(x8.float() / 255))  # uint8 is read as /255
        y = video_ae.decode(z)
        assert y.shape == x.shape and 0.0 <= y.min() and y.max() <= 1.0
        assert video_ae.decode(z, layout="bcthw").shape == (1, 3, 32, 64, 64)


def test_video_bad_input(video_ae):
    with pytest.raises(ValueError, match="batch"):
        video_ae.encode(torch.zeros(32, 64, 64, 3))
    with pytest.raises(ValueError, match="multiple of 2"):
        video_ae.encode(torch.zeros(1, 31, 64, 64, 3))
    with pytest.raises(ValueError, match="multiples of 8"):
        video_ae.encode(torch.zeros(1, 32, 60, 64, 3))
    with pytest.raises(ValueError, match="RGB"):
        video_ae.encode(torch.zeros(1, 32, 64, 64, 4))
    with pytest.raises(ValueError, match=r"\[B, 8, T, H, W\]"):
        video_ae.decode(torch.zeros(1, 4, 16, 8, 8))


def test_video_psnr_on_held_out_clips(video_ae, held_clips):
    """Mean PSNR >= 30 dB. Per clip the shipped file is not always there: on the 64 held-out clips
    the training command reports, the mean is 34.4 dB and 3 clips (yellow, moving) are at 29.4 to
    29.9 dB, so each clip is held to 29 dB (docs/TOYAV-AUTOENCODERS.md)."""
    values = []
    with torch.no_grad():
        for clip in held_clips:
            x = torch.from_numpy(clip.frames)[None]
            values.append(psnr(video_ae.decode(video_ae.encode(x)), x))
    assert np.mean(values) >= 30.0 and min(values) >= 29.0, values


def test_video_latents_are_well_scaled(video_ae, many_held_clips):
    with torch.no_grad():
        z = video_ae.encode(torch.from_numpy(np.stack([c.frames for c in many_held_clips])))
    mean, std = z.mean(dim=(0, 2, 3, 4)), z.std(dim=(0, 2, 3, 4))
    assert mean.abs().max() < 0.5 and (std > 0.5).all() and (std < 2.0).all(), (mean, std)


# ---------------------------------------------------------------------------------- audio
def test_audio_shapes_and_rates(audio_ae, held_clips):
    assert audio_ae.latent_channels == 8 and audio_ae.audio_latent_rate == 62.5
    assert audio_ae.sample_rate == 16000 and audio_ae.latent_shape() == (8, 125)
    x = torch.from_numpy(np.stack([c.waveform for c in held_clips[:2]]))
    with torch.no_grad():
        z = audio_ae.encode(x)
        assert z.shape == (2, 8, 125)
        assert torch.allclose(audio_ae.encode(x[:, None]), z)
        y = audio_ae.decode(z)
        assert y.shape == (2, 32000)
        assert torch.equal(audio_ae.decode(z), y)  # the noise floor has a fixed seed


def test_audio_bad_input(audio_ae):
    with pytest.raises(ValueError, match="16000 Hz"):
        audio_ae.encode(torch.zeros(1, 32000), sample_rate=44100)
    with pytest.raises(ValueError, match="multiple of the hop 256"):
        audio_ae.encode(torch.zeros(1, 32001))
    with pytest.raises(ValueError, match="mono"):
        audio_ae.encode(torch.zeros(1, 2, 32000))
    with pytest.raises(ValueError, match="batch"):
        audio_ae.encode(torch.zeros(32000))
    with pytest.raises(ValueError, match=r"\[B, 8, L\]"):
        audio_ae.decode(torch.zeros(1, 8, 125, 1))


def test_audio_onsets_and_pitch_on_held_out_clips(audio_ae, held_clips):
    """Onsets within 5 ms of the original's (none missed, none added) and pitch within 1 %,
    both measured by the ToyAV metrics module."""
    sr = w.SAMPLE_RATE
    with torch.no_grad():
        rec = audio_ae.decode(audio_ae.encode(torch.from_numpy(np.stack([c.waveform for c in held_clips]))))
    for clip, y in zip(held_clips, rec.numpy()):
        ref, found = m.sound_onsets(clip.waveform, sr), m.sound_onsets(y, sr)
        errors, missed, extra = onset_errors_ms(ref, found)
        assert len(ref) and not missed and not extra, (clip.prompt, ref, found)
        assert max(errors) <= 5.0, (clip.prompt, errors)
        f_ref, f_rec = m.fundamental_hz(clip.waveform, sr), m.fundamental_hz(y, sr)
        assert abs(f_rec / f_ref - 1.0) <= 0.01, (clip.prompt, f_ref, f_rec)
        assert abs(f_rec / w.COLOURS[clip.colour].pitch_hz - 1.0) <= 0.01


def test_audio_latents_are_well_scaled(audio_ae, many_held_clips):
    with torch.no_grad():
        z = audio_ae.encode(torch.from_numpy(np.stack([c.waveform for c in many_held_clips])))
    mean, std = z.mean(dim=(0, 2)), z.std(dim=(0, 2))
    assert mean.abs().max() < 0.5 and (std > 0.5).all() and (std < 2.0).all(), (mean, std)


# ---------------------------------------------------------------------------------- text
def test_text_encoder_shapes_and_null():
    enc = load_text_encoder()
    emb, mask = enc.encode(["a blue square sliding", "A RED Circle Bouncing.", ""])
    assert emb.shape == (3, MAX_TOKENS, enc.text_dim) and enc.text_dim == 64
    assert mask.tolist() == [[True] * 4 + [False], [True] * 4 + [False], [True] + [False] * 4]
    assert torch.equal(emb[2:], enc.null(1)) and not torch.equal(emb[0], emb[2])
    # The shipped table is the deterministic one.
    assert torch.equal(enc.token_embedding, ToyAVTextEncoder().token_embedding)


def test_text_encoder_is_informative():
    """All 36 prompts give distinct embeddings; tokens and positions are orthogonal, unit RMS."""
    enc = load_text_encoder()
    emb, _ = enc.encode(list(w.PROMPTS))
    assert len({tuple(e.flatten().tolist()) for e in emb}) == 36
    table = torch.cat([enc.token_embedding, enc.position_embedding])
    gram = table @ table.T / enc.text_dim
    assert torch.allclose(gram, torch.eye(len(table)), atol=1e-5)
    rms = emb.pow(2).mean(-1)
    assert torch.allclose(rms[:, :4], torch.ones(36, 4), atol=1e-5) and (rms[:, 4:] == 0).all()  # pads are 0


def test_unknown_word_lists_the_vocabulary():
    enc = load_text_encoder()
    with pytest.raises(ValueError) as err:
        enc.encode(["a purple circle bouncing"])
    message = str(err.value)
    assert "'purple'" in message
    assert all(word in message for word in VOCAB[2:])
    with pytest.raises(ValueError, match="at most 5"):
        enc.encode(["a red circle bouncing a red"])


# ---------------------------------------------------------------------------------- files, training
def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    video = VideoAE(VideoAEConfig(widths=(4, 8, 8, 8), res_blocks=1))
    video.set_latent_stats(torch.arange(8) * 0.1, torch.linspace(0.5, 2.0, 8))
    audio = AudioAE(AudioAEConfig(width=16, fine_width=8, n_harmonics=4, dilations=(1,)))
    save_autoencoder(video, tmp_path / "v.safetensors", {"note": 1})
    save_autoencoder(audio, tmp_path / "a.safetensors")
    v2, a2 = load_video_ae(tmp_path / "v.safetensors"), load_audio_ae(tmp_path / "a.safetensors")
    assert v2.config == video.config and v2.metrics == {"note": 1}
    x = torch.rand(1, 4, 16, 16, 3)
    wave = torch.randn(1, 1024) * 0.1
    with torch.no_grad():
        assert torch.equal(v2.decode(v2.encode(x)), video.decode(video.encode(x)))
        assert torch.equal(a2.decode(a2.encode(wave)), audio.decode(audio.encode(wave)))
    with pytest.raises(ValueError, match="expected a 'ccl-toyav-video-ae'"):
        load_video_ae(tmp_path / "a.safetensors")
    with pytest.raises(FileNotFoundError):
        load_autoencoder(tmp_path / "missing.safetensors")
    enc = ToyAVTextEncoder(dim=32, seed=3)
    save_text_encoder(enc, tmp_path / "t.safetensors")
    enc2 = load_text_encoder(tmp_path / "t.safetensors")
    assert torch.equal(enc2.encode(["a red circle bouncing"])[0], enc.encode(["a red circle bouncing"])[0])
    with pytest.raises(ValueError, match="not a ToyAV text encoder"):
        load_text_encoder(tmp_path / "v.safetensors")


def test_training_command_runs(tmp_path):
    """Two steps of each on two clips through the command line, writing all three files."""
    from ccl_lab.train_autoencoders import main

    report = main(["--out", str(tmp_path), "--pool-clips", "2", "--video-steps", "2", "--audio-steps", "2",
                   "--video-batch", "2", "--audio-batch", "2", "--eval-clips", "1",
                   "--threads", str(torch.get_num_threads())])
    assert sorted(report["files_bytes"]) == sorted(p.name for p in SHIPPED)
    assert np.isfinite(report["video"]["heldout"]["psnr_mean_db"])
    load_video_ae(tmp_path / VIDEO_AE_FILE), load_audio_ae(tmp_path / AUDIO_AE_FILE)


def test_diffusion_config_from_the_encoders(video_ae, audio_ae, held_clips):
    """Latents and text of a clip feed a DualStreamModel built from the encoders' attributes."""
    from ccl_core import DualStreamModel, tiny_config

    text = load_text_encoder()
    cfg = tiny_config(video_channels=video_ae.latent_channels, audio_channels=audio_ae.latent_channels,
                      video_latent_fps=video_ae.video_latent_fps, audio_latent_rate=audio_ae.audio_latent_rate,
                      text_dim=text.text_dim)
    clip = held_clips[0]
    with torch.no_grad():
        v = video_ae.encode(torch.from_numpy(clip.frames)[None])
        a = audio_ae.encode(torch.from_numpy(clip.waveform)[None])
        emb, _ = text.encode([clip.prompt])
        out_v, out_a = DualStreamModel(cfg)(v, a, torch.tensor([0.5]), None, emb)
    assert out_v.shape == v.shape and out_a.shape == a.shape
