"""Task, latent, decode and video nodes against tests/comfy_stub (no ComfyUI)."""

import os
from fractions import Fraction
from types import SimpleNamespace

import pytest
import torch

from pack_loader import load_pack, node_classes

pack = load_pack()
N = node_classes(pack)
joint = pack.nodes.joint
latent_spec = pack.ccl_core.latent_spec
core = pack.ccl_core
import comfy.model_management  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402


class FakePatcher:
    """Stands in for a loaded MODEL where only the spec matters."""

    def __init__(self, spec):
        self.model = type("M", (), {"ccl_spec": spec})()


TINY = latent_spec.LatentSpec(video_channels=4, audio_channels=3, video_latent_fps=4.0, audio_latent_rate=16.0,
                         video_patch=(1, 2, 2), text_dim=16, text_len=8)
# Ovi-like spaces at toy sizes: Wan 2.2 normalisation (fake constants in the stub), x4 time, x16 space
OVIISH = latent_spec.LatentSpec(video_channels=48, audio_channels=20, video_latent_fps=6.0, audio_latent_rate=31.25,
                           video_patch=(1, 2, 2), **pack.ccl_core.ovi.OVI_LATENT_SPACES)


class FakeAudioVAE:
    """ComfyUI audio VAE contract: encode([B, S, C]) -> [B, C_lat, L]; decode -> [B, S, C]."""
    latent_dim = 1
    output_channels = 2

    def __init__(self, channels=3, hop=441):
        self.channels, self.hop, self.seen = channels, hop, []

    def encode(self, wav):
        self.seen.append(tuple(wav.shape))
        b, s, c = wav.shape
        n = s // self.hop
        x = wav[:, :n * self.hop].reshape(b, n, self.hop, c).mean((2, 3))
        return x.unsqueeze(1).repeat(1, self.channels, 1)

    def decode(self, z):
        return z.mean(1, keepdim=True).repeat_interleave(self.hop, dim=2).movedim(1, -1).repeat(1, 1, 2)


class FakeImageVAE:
    """An image VAE (latent_dim 2, like pixel_space): frames [F, H, W, 3] <-> [F, C, H, W]."""
    latent_dim = 2

    def __init__(self, channels=4):
        self.channels = channels

    def encode(self, images):
        x = images.movedim(-1, 1)
        return torch.cat([x, x[:, :1].repeat(1, self.channels - 3, 1, 1)], 1)

    def decode(self, z):
        return z[:, :3].movedim(1, -1)


def tiny_latent(batch=1, seconds=2.0):
    return N["CCLEmptyJointLatent"].execute(FakePatcher(TINY), 16, 8, seconds, batch)


def test_audio_to_video_sets_routes_and_mask():
    lat, fps, frames = tiny_latent(batch=2)
    pos = [[torch.randn(1, 5, 16), {"pooled_output": None}]]
    audio = {"waveform": torch.randn(1, 2, 22050 * 3), "sample_rate": 22050}
    vae = FakeAudioVAE(hop=2756)  # 44100 / 16 latents per second
    p, n, out = N["CCLAudioToVideo"].execute(pos, lat, vae, audio)
    assert vae.seen == [(1, 88200, 2)]  # resampled to 44.1 kHz, trimmed to the latent's 2 s, [B, S, C]
    v, a = out["samples"].unbind()
    clean = out["ccl"]["clean"]["audio"]
    assert clean.shape == a.shape == (2, 3, 32) and torch.equal(a, clean)
    assert p[0][1]["ccl_task"] == "a2v" and torch.equal(p[0][1]["ccl_clean_audio"], clean)
    assert n[0][1]["ccl_task"] == "a2v" and not n[0][0].any()  # no negative given: the null text
    assert "noise_mask" not in out  # the model holds the audio (test_comfy_native), no sampler mask
    assert "pooled_output" in p[0][1] and "ccl_task" not in pos[0][1]  # inputs are not mutated


def test_audio_to_video_pads_short_audio_with_silence():
    lat, _, _ = tiny_latent()
    vae = FakeAudioVAE(hop=2756)
    audio = {"waveform": torch.ones(1, 1, 44100), "sample_rate": 44100}  # 1 s for a 2 s latent
    _, _, out = N["CCLAudioToVideo"].execute([[torch.zeros(1, 2, 16), {}]], lat, vae, audio)
    clean = out["ccl"]["clean"]["audio"][0, 0]
    assert vae.seen == [(1, 88200, 2)]  # mono repeated for a stereo VAE, padded to 2 s
    assert clean[:15].min() > 0.9 and clean[-15:].abs().max() == 0


def test_video_to_audio_resamples_frames():
    lat, _, _ = tiny_latent()
    frames = torch.stack([torch.full((8, 16, 3), i / 20) for i in range(20)])  # 20 frames at 10 fps
    p, n, out = N["CCLVideoToAudio"].execute([[torch.zeros(1, 2, 16), {}]], lat, FakeImageVAE(), frames, 10.0)
    clean = out["ccl"]["clean"]["video"]  # 8 frames at the model's 4 fps: source frames 0, 2, 5, 7, ...
    assert clean.shape == (1, 4, 8, 8, 16)
    expect = torch.tensor([int(k * 10 / 4) for k in range(8)]) / 20
    torch.testing.assert_close(clean[0, 0, :, 0, 0], expect)
    assert p[0][1]["ccl_task"] == "v2a"
    assert "noise_mask" not in out


@pytest.mark.parametrize("node,task", [("CCLVideoOnly", "t2v"), ("CCLAudioOnly", "t2a")])
def test_only_tasks(node, task):
    lat, _, _ = tiny_latent()
    neg = [[torch.ones(1, 3, 16), {}]]
    p, n, out = N[node].execute([[torch.zeros(1, 2, 16), {}]], lat, negative=neg)
    assert p[0][1]["ccl_task"] == n[0][1]["ccl_task"] == task and n[0][0].all()
    assert "noise_mask" not in out  # the absent stream is held at zeros by the model (test_comfy_native)


def test_split_join_roundtrip_with_wan22_space():
    model = FakePatcher(OVIISH)
    lat, fps, frames = N["CCLEmptyJointLatent"].execute(model, 64, 32, 1.0, 1)
    assert fps == 24.0 and frames == 25
    v, a = lat["samples"].unbind()
    assert v.shape == (1, 48, 7, 2, 4) and a.shape == (1, 20, 32)
    lat["samples"] = joint.nested((torch.randn(v.shape), torch.randn(a.shape)))
    sv, sa = N["CCLSplitLatent"].execute(lat)
    assert sa["type"] == "audio" and torch.equal(sa["samples"], lat["samples"].unbind()[1])  # audio: identity
    assert not torch.allclose(sv["samples"], lat["samples"].unbind()[0])  # video: to the VAE's raw space
    (joined,) = N["CCLJoinLatents"].execute(model, sv, sa)
    torch.testing.assert_close(joined["samples"].unbind()[0], lat["samples"].unbind()[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="covers 1.17 s"):
        N["CCLJoinLatents"].execute(model, sv, {"samples": torch.zeros(1, 20, 64)})


def test_join_repeats_a_batch_of_one_and_refuses_two_batches_that_differ():
    model = FakePatcher(OVIISH)
    lat, _, _ = N["CCLEmptyJointLatent"].execute(model, 64, 32, 1.0, 1)
    sv, sa = N["CCLSplitLatent"].execute(lat)
    three = {"samples": torch.randn(3, *sa["samples"].shape[1:])}
    (joined,) = N["CCLJoinLatents"].execute(model, sv, three)
    v, a = joined["samples"].unbind()
    assert v.shape[0] == a.shape[0] == 3 and torch.equal(v[0], v[2]) and torch.equal(a, three["samples"])
    (joined,) = N["CCLJoinLatents"].execute(model, {"samples": sv["samples"].repeat(3, 1, 1, 1, 1)}, sa)
    assert joined["samples"].unbind()[1].shape[0] == 3
    with pytest.raises(ValueError, match="video batch 2 and audio batch 3 differ"):
        N["CCLJoinLatents"].execute(model, {"samples": sv["samples"].repeat(2, 1, 1, 1, 1)}, three)


def test_split_restores_held_stream_exactly():
    lat, _, _ = tiny_latent()
    _, _, out = N["CCLAudioToVideo"].execute([[torch.zeros(1, 2, 16), {}]], lat, FakeAudioVAE(hop=2756),
                                             {"waveform": torch.randn(1, 1, 88200), "sample_rate": 44100})
    clean = out["ccl"]["clean"]["audio"]
    sampled = dict(out)
    v, a = out["samples"].unbind()
    sampled["samples"] = joint.nested((v, a + 1e-7))  # what a sampler gives back: equal up to rounding
    assert torch.equal(N["CCLSplitLatent"].execute(sampled)[1]["samples"], clean)


def test_plain_latent_is_refused():
    with pytest.raises(ValueError, match="joint audio-video LATENT"):
        N["CCLSplitLatent"].execute({"samples": torch.zeros(1, 4, 8, 8)})


def test_decode_fits_audio_to_video_and_reports_progress():
    lat, fps, frames = tiny_latent(batch=2, seconds=1.5)
    v, a = lat["samples"].unbind()
    lat["samples"] = joint.nested((torch.rand(v.shape), torch.randn(a.shape)))
    comfy.utils.PROGRESS.clear()
    images, audio, out_fps = N["CCLDecode"].execute(lat, FakeImageVAE(), FakeAudioVAE(hop=1000))
    assert images.shape == (2 * frames, 8, 16, 3) and out_fps == fps == 4.0
    assert audio["sample_rate"] == 44100 and audio["waveform"].shape == (2, 2, round(frames / fps * 44100))
    assert comfy.utils.PROGRESS[-1] == (4, 4)


def test_decode_t2v_gives_silence():
    lat, _, frames = tiny_latent()
    _, _, out = N["CCLVideoOnly"].execute([[torch.zeros(1, 2, 16), {}]], lat)
    images, audio, fps = N["CCLDecode"].execute(out, FakeImageVAE(), FakeAudioVAE())
    assert images.shape[0] == frames and not audio["waveform"].any()
    assert audio["waveform"].shape[-1] == round(frames / fps * 44100)


def test_decode_stops_on_interrupt():
    lat, _, _ = tiny_latent(batch=2)
    comfy.model_management.interrupt_current_processing(True)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        N["CCLDecode"].execute(lat, FakeImageVAE(), FakeAudioVAE())


def test_latent_preview():
    lat, fps, frames = N["CCLEmptyJointLatent"].execute(FakePatcher(OVIISH), 64, 32, 1.0, 1)
    v, a = lat["samples"].unbind()
    lat["samples"] = joint.nested((torch.randn(v.shape), torch.randn(a.shape)))
    images, audio, out_fps = N["CCLLatentPreview"].execute(lat)
    assert images.shape == (frames, 32, 64, 3) and 0 <= images.min() and images.max() <= 1
    assert audio["waveform"].shape == (1, 1, round(frames / 24 * 44100)) and out_fps == 24.0


def test_create_video_pads_and_fits_audio():
    images = torch.rand(10, 9, 15, 4)
    audio = {"waveform": torch.randn(2, 6, 30000), "sample_rate": 16000}
    (video,) = N["CCLCreateVideo"].execute(images, 25.0, audio)
    comp = video.get_components()
    assert comp.images.shape == (10, 10, 16, 3) and comp.frame_rate == Fraction(25)
    torch.testing.assert_close(comp.images[:, 9, :15], comp.images[:, 8, :15])  # edge repeated
    assert comp.audio["waveform"].shape == (1, 2, 6400)  # first clip, 2 channels, 10 frames / 25 fps


def test_save_video_writes_numbered_faststart_mp4(tmp_path):
    av = pytest.importorskip("av")
    folder_paths.set_output_directory(str(tmp_path))
    images = torch.rand(12, 33, 47, 3)
    audio = {"waveform": torch.randn(1, 1, 8000) * 0.1, "sample_rate": 16000}  # 0.5 s for a 1 s video
    (video,) = N["CCLCreateVideo"].execute(images, 12.0, audio)
    saver = N["CCLSaveVideo"]
    # as ComfyUI's executor runs it: a copy of the class whose `hidden` holds this run's prompt and workflow
    hidden = SimpleNamespace(prompt={"1": {"class_type": "X"}}, extra_pnginfo={"workflow": {}})
    run = type("CCLSaveVideoRun", (saver,), {"hidden": hidden})
    res1 = run.execute(video, "clips/test", 23).ui.as_dict()
    res2 = saver.execute(video, "clips/test", 23).ui.as_dict()
    names = [r["images"][0]["filename"] for r in (res1, res2)]
    assert names == ["test_00001_.mp4", "test_00002_.mp4"] and res1["animated"] == (True,)
    assert res1["images"][0] == {"filename": names[0], "subfolder": "clips", "type": "output"}
    path = os.path.join(str(tmp_path), "clips", names[0])
    head = open(path, "rb").read(4096)
    assert 0 < head.find(b"moov") < max(head.find(b"mdat"), 4096)  # faststart: index before the data
    with av.open(path) as c:
        vs, aud = c.streams.video[0], c.streams.audio[0]
        assert (vs.codec_context.name, aud.codec_context.name) == ("h264", "aac")
        assert (vs.width, vs.height) == (48, 34) and vs.average_rate == 12
        assert sum(1 for _ in c.decode(video=0)) == 12
        assert "prompt" in c.metadata and "workflow" in c.metadata
    with av.open(path) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / 16000 - 1.0) < 0.1  # padded with silence to the video's 1 s


def test_save_video_never_overwrites_a_name_taken_while_it_encodes(tmp_path, monkeypatch):
    """Another writer takes the node's numbered name while it encodes: it moves to the next number."""
    folder_paths.set_output_directory(str(tmp_path))
    (video,) = N["CCLCreateVideo"].execute(torch.rand(4, 16, 16, 3), 8.0, None)
    taken = os.path.join(str(tmp_path), "clips", "race_00001_.mp4")

    def on_encode(*args, **kwargs):  # the other writer finishes first, while this one encodes
        if not os.path.exists(taken):
            with open(taken, "wb") as f:
                f.write(b"the other writer's clip")

    saver = N["CCLSaveVideo"]
    monkeypatch.setattr(pack.nodes.video, "check_interrupt", on_encode)
    res = saver.execute(video, "clips/race", 19).ui.as_dict()
    assert res["images"][0]["filename"] == "race_00002_.mp4"
    assert open(taken, "rb").read() == b"the other writer's clip"  # untouched
    assert sorted(os.listdir(os.path.join(str(tmp_path), "clips"))) == ["race_00001_.mp4", "race_00002_.mp4"]
