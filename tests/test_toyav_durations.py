"""Training on clips of several lengths: the data layer encodes and caches each duration, batches of
one duration each drawn with weights, an exact resume, and train_embedded's --durations."""

import json
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ccl_core import DualStreamModel, tiny_config
from ccl_core.generate import clip_lengths
from ccl_lab import data as toydata
from ccl_lab import train_embedded
from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
from ccl_lab.data import clip_latents, duration_cache, load_or_encode
from ccl_lab.generator import generate_batch
from ccl_lab.world import DURATION_S, FPS, SAMPLE_RATE
from ccl_train import DurationBatches, LatentBatches, TrainConfig, train
from conftest import randomize


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def aes():
    return load_video_ae(), load_audio_ae()


def fake_dataset(n, frames, cfg=None, seed=0):
    """Latents of n clips of `frames` latent video frames for tiny_config (4 latent fps, 16 audio /s)."""
    cfg = cfg or tiny_config()
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.randn(n, cfg.video_channels, frames, 8, 8, generator=g),
            "audio": torch.randn(n, cfg.audio_channels, frames * 4, generator=g),
            "text": torch.randn(n, 5, cfg.text_dim, generator=g)}


# ---------------------------------------------------------------------- clips and their latents
def test_generate_batch_makes_clips_of_any_length():
    batch = generate_batch([3, 4], seconds=1.5)
    assert batch.frames.shape[:2] == (2, round(1.5 * FPS))
    assert batch.waveforms.shape == (2, round(1.5 * SAMPLE_RATE))
    longer = generate_batch([3], seconds=1.5, samples=24_128)  # whole audio latents, past the picture's end
    assert longer.waveforms.shape == (1, 24_128)
    assert (longer.frames == batch.frames[:1]).all() and longer.clips[0].events == batch.clips[0].events
    assert (generate_batch([3]).frames == generate_batch([3], seconds=DURATION_S).frames).all()


def test_the_cache_holds_the_image_latent_of_each_clips_first_frame(aes):
    """i2av trains on what sampling makes of an image (generate.image_latent of the first frame held
    still), both in a fresh encoding and when an older cache gets it added (first_stills)."""
    from ccl_core.generate import image_latent
    from ccl_core.toyav.text import load_text_encoder

    video_ae, audio_ae = aes
    data = toydata.encode_clips(2, 5, video_ae, audio_ae, load_text_encoder(), seconds=1.0)
    frames = torch.from_numpy(generate_batch([5, 6], seconds=1.0).frames)
    assert data["first_still"].shape == (2, data["video"].shape[1], 1, *data["video"].shape[3:])
    torch.testing.assert_close(data["first_still"], torch.cat([image_latent(video_ae, f[0]) for f in frames]))
    assert not torch.allclose(data["first_still"], data["video"][:, :, :1])  # not the clip's first two frames
    # drawn again, here in a worker process (the pool path encode_clips also takes)
    torch.testing.assert_close(toydata.first_stills(2, 5, video_ae, workers=1, seconds=1.0), data["first_still"])


def test_training_clips_have_the_lengths_sampling_makes(aes):
    """One rule for the audio of a clip of S seconds: clip_latents agrees with generate.clip_lengths."""
    video_ae, audio_ae = aes
    pipe = SimpleNamespace(native_seconds=DURATION_S, video_ae=video_ae, audio_ae=audio_ae,
                           model=SimpleNamespace(config=SimpleNamespace(video_patch=(1, 2, 2))))
    for seconds in (0.375, 1.0, 1.5, 2.0, 3.0, 3.125, 4.0, 8.0):
        assert clip_latents(seconds, video_ae, audio_ae) == clip_lengths(pipe, seconds), seconds
    assert clip_latents(2.0, video_ae, audio_ae) == (16, 125)  # the world's clips, as before


@pytest.mark.parametrize("seconds, message", [
    (1.1, r"1.1 s is not whole latent video frames \(0.125 s each at 16 fps\); use a multiple of 0.125 s, "
          r"e.g. 1 or 1.125"),
    (0.25, r"must last over 0.3125 s"),
    (0.0, r"a number of seconds > 0"),
    (float("nan"), r"a number of seconds > 0")])
def test_a_duration_that_is_not_whole_latent_frames_is_refused(aes, seconds, message):
    with pytest.raises(ValueError, match=message):
        clip_latents(seconds, *aes)


def test_a_temporal_patch_makes_coarser_durations(aes):
    assert clip_latents(0.5, *aes, temporal_patch=2) == (4, 31)
    with pytest.raises(ValueError, match=r"use a multiple of 0.25 s, e.g. 0.5 or 0.75"):
        clip_latents(0.625, *aes, temporal_patch=2)


# ---------------------------------------------------------------------- the cache
def test_the_cache_key_includes_the_duration(tmp_path, monkeypatch, aes):
    from ccl_core.toyav.text import load_text_encoder
    video_ae, audio_ae = aes
    text = load_text_encoder()
    cache = tmp_path / "latents.safetensors"
    one = load_or_encode(cache, 2, 5, video_ae, audio_ae, text, seconds=1.0)
    assert (one["video"].shape[2], one["audio"].shape[2]) == (8, 62)
    with safe_open(str(cache), "pt") as f:
        assert f.metadata() == {"n_clips": "2", "base_seed": "5", "seconds": "1.0"}
    calls = []
    real = toydata.encode_clips
    monkeypatch.setattr(toydata, "encode_clips", lambda *a, **k: calls.append(k["seconds"]) or real(*a, **k))
    again = load_or_encode(cache, 2, 5, video_ae, audio_ae, text, seconds=1)
    assert calls == [] and all(torch.equal(one[k], again[k]) for k in one)  # 1 == 1.0 s: reused
    two = load_or_encode(cache, 2, 5, video_ae, audio_ae, text, seconds=2.0)  # another duration: encoded anew
    assert calls == [2.0] and two["video"].shape[2] == 16
    assert duration_cache(cache, 2.0) == cache
    assert duration_cache(cache, 4) == tmp_path / "latents-4s.safetensors"
    assert duration_cache(tmp_path / "a.b.safetensors", 1.5) == tmp_path / "a.b-1.5s.safetensors"


def test_a_cache_written_before_durations_is_the_worlds_2_s(tmp_path, monkeypatch):
    """The lead's runs reuse a cache whose metadata has n_clips and base_seed only."""
    cache = tmp_path / "latents.safetensors"
    old = fake_dataset(3, 16)
    save_file(old, str(cache), metadata={"n_clips": "3", "base_seed": "0"})

    def encode(*args, **kw):
        return {"marker": torch.ones(1) * kw["seconds"]}
    monkeypatch.setattr(toydata, "encode_clips", encode)
    monkeypatch.setattr(toydata, "first_stills", lambda n, seed, ae, **kw: torch.full((n, 1), float(kw["seconds"])))
    got = load_or_encode(cache, 3, 0, None, None, None)
    assert all(torch.equal(got[k], old[k]) for k in old)
    assert torch.equal(got["first_still"], torch.full((3, 1), 2.0))  # added once, for the world's 2 s
    with safe_open(str(cache), "pt") as f:  # and written back: its tensors and key as they were
        assert f.metadata() == {"n_clips": "3", "base_seed": "0"} and set(f.keys()) == set(old) | {"first_still"}
    got = load_or_encode(cache, 3, 0, None, None, None, seconds=2)
    assert all(torch.equal(got[k], old[k]) for k in old)
    assert load_or_encode(None, 3, 0, None, None, None, seconds=4.0)["marker"].item() == 4.0  # not 2 s: encoded
    assert load_or_encode(None, 3, 1, None, None, None)["marker"].item() == 2.0  # another seed: encoded


# ---------------------------------------------------------------------- batches of mixed durations
def mixed(seed=3, weights=None):
    datasets = {1.0: fake_dataset(5, 4, seed=1), 2.0: fake_dataset(7, 8, seed=2), 3.0: fake_dataset(4, 12, seed=3)}
    return DurationBatches(datasets, weights or {1.0: 0.2, 2.0: 0.5, 3.0: 0.3}, torch.zeros(1, 2, 16), 2, seed=seed)


def take(source, n):
    it = iter(source)
    return [next(it) for _ in range(n)]


def test_every_batch_has_one_duration_drawn_with_the_weights():
    batches = take(mixed(), 400)
    frames = [b["video"].shape[2] for b in batches]
    for b in batches:
        assert b["audio"].shape[2] == 4 * b["video"].shape[2] and b["video"].shape[0] == b["text"].shape[0] == 2
    share = {f: frames.count(f) / len(frames) for f in (4, 8, 12)}
    assert abs(share[4] - 0.2) < 0.07 and abs(share[8] - 0.5) < 0.07 and abs(share[12] - 0.3) < 0.07, share
    other = [b["video"].shape[2] for b in take(mixed(seed=4), 400)]
    assert other != frames  # the seed draws the order
    assert [b["video"].shape[2] for b in take(mixed(), 400)] == frames  # and only the seed


def test_mixed_batches_resume_exactly():
    straight = take(mixed(), 23)
    first = mixed()
    take(first, 9)
    state = first.state_dict()
    buffer = __import__("io").BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    resumed = mixed()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))  # how train() stores it
    for a, b in zip(straight[9:], take(resumed, 14)):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_resumed_with_other_durations_is_refused():
    with pytest.raises(ValueError, match=r"started with clips of \[1.0, 2.0, 3.0\] s, not \[1.0, 2.0\] s"):
        DurationBatches({1.0: fake_dataset(3, 4), 2.0: fake_dataset(3, 8)}, {1.0: 1, 2.0: 1}, torch.zeros(1, 2, 16),
                        2).load_state_dict(mixed().state_dict())
    with pytest.raises(ValueError,
                       match=r"started with clips of one dataset only \(LatentBatches\), not \[1.0, 2.0, 3.0\] s"):
        mixed().load_state_dict(LatentBatches(fake_dataset(3, 8), torch.zeros(1, 2, 16), 2).state_dict())
    with pytest.raises(ValueError, match=r"several durations .* resume it with the same durations"):
        LatentBatches(fake_dataset(3, 8), torch.zeros(1, 2, 16), 2).load_state_dict(mixed().state_dict())


@pytest.mark.parametrize("weights, message", [
    ({1.0: 1.0, 2.0: 0.0, 3.0: 1.0}, r"finite and > 0, got \{2.0: 0.0\}"),
    ({1.0: 1.0, 2.0: 1.0}, r"one weight per dataset")])
def test_bad_duration_weights_are_refused(weights, message):
    with pytest.raises(ValueError, match=message):
        mixed(weights=weights)


def test_a_duration_with_fewer_clips_than_a_batch_is_named():
    with pytest.raises(ValueError, match=r"the 3 s clips: batch_size 5 is larger than the dataset \(4 clips\)"):
        DurationBatches({2.0: fake_dataset(7, 8), 3.0: fake_dataset(4, 12)}, {2.0: 1, 3.0: 1},
                        torch.zeros(1, 2, 16), 5)


def mixed_config(steps):
    """Every task, clean prefixes (i2av, extend) included, so every route meets every length."""
    return TrainConfig(steps=steps, seed=7, warmup_steps=1, lr_fusion=1e-3, lr_towers=1e-3, save_every=100,
                       ema_decay=0.9, p_null_text=0.3, p_ctx_only=0.2, mixed_precision="no",
                       task_mix={"t2av": 0.3, "i2av": 0.15, "extend": 0.15, "a2v": 0.1, "v2a": 0.1, "t2v": 0.1,
                                 "t2a": 0.1})


def tiny_model():
    torch.manual_seed(0)
    return randomize(DualStreamModel(tiny_config()), seed=0)


def test_a_mixed_duration_run_trains_and_resumes_exactly(tmp_path):
    """The model, TARP's aligned RoPE and the trainer take another clip length every step."""
    seen = []
    straight = train(tiny_model(), mixed(), mixed_config(5), tmp_path / "a", device="cpu",
                     callback=lambda trainer, res: seen.append(res.loss))
    assert len(seen) == 5 and all(torch.isfinite(torch.tensor(seen)))
    assert [mixed().duration_index(n) for n in range(5)] == [0, 0, 2, 1, 2]  # every length, changing mid-run
    train(tiny_model(), mixed(), mixed_config(3), tmp_path / "b", device="cpu")
    resumed = train(tiny_model(), mixed(), mixed_config(5), tmp_path / "b", device="cpu", resume=True)
    assert resumed.step_count == 5
    for (n, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), n
    for n, s in straight.ema.shadow.items():
        assert torch.equal(s, resumed.ema.shadow[n]), n


# ---------------------------------------------------------------------- train_embedded --durations
def plan(*argv):
    return train_embedded.duration_plan(train_embedded.build_parser().parse_args(list(argv)))


def test_durations_are_parsed_and_recorded_in_the_recipe():
    default = train_embedded.build_parser().parse_args([])
    assert plan() is None and "durations" not in train_embedded.recipe(default)
    assert plan("--durations", "2") is None and plan("--durations", "2:0.3") is None  # the world's 2 s alone
    got = plan("--durations", "2:0.6, 4:0.4,1", "--clips", "300", "--clips-per-duration", "1:500")
    assert got == [{"seconds": 2.0, "weight": 0.6, "clips": 300, "first_seed": 0},
                   {"seconds": 4.0, "weight": 0.4, "clips": 150, "first_seed": 64 * 10**9},  # the same footage
                   {"seconds": 1.0, "weight": 1.0, "clips": 500, "first_seed": 16 * 10**9}]
    args = train_embedded.build_parser().parse_args(["--durations", "4:1", "--seed", "2"])
    assert train_embedded.recipe(args)["durations"] == [{"seconds": 4.0, "weight": 1.0, "clips": 1500,
                                                         "first_seed": 2 + 64 * 10**9}]


@pytest.mark.parametrize("argv, message", [
    (["--durations", "2:0.6,4:0"], r"--durations: the weight of 4 s must be > 0, got 0"),
    (["--durations", "2:0.6,4:-1"], r"--durations: the weight of 4 s must be > 0, got -1"),
    (["--durations", "2:0.6,4:inf"], r"--durations: the weight of 4 s must be > 0"),
    (["--durations", "2:0.6,4:x"], r"--durations: the weight of 4 s must be a number, got 'x'"),
    (["--durations", "2:0.6,,4:1"], r"--durations takes SECONDS:WEIGHT pairs .* e.g. 2:0.6,4:0.4; '' does not"),
    (["--durations", "four:1"], r"--durations takes SECONDS:WEIGHT pairs .* 'four:1' does not start"),
    (["--durations=-2:1"], r"--durations: a clip length must be a number of seconds > 0, got -2"),
    (["--durations", "0:1,2:1"], r"--durations: a clip length must be a number of seconds > 0, got 0"),
    (["--durations", "2:1,2.0:1"], r"--durations: 2 s is named twice"),
    (["--durations", "0.25:1"], r"--durations: a ToyAV clip must last over 0.3125 s"),
    (["--durations", "1.1:1"], r"--durations: a clip of 1.1 s is not whole latent video frames .* e.g. 1 or 1.125"),
    (["--durations", "0.625:1", "--set", "video_patch=[2,2,2]"], r"use a multiple of 0.25 s, e.g. 0.5 or 0.75"),
    (["--clips-per-duration", "4:10"], r"--clips-per-duration needs --durations"),
    (["--durations", "2,4", "--clips-per-duration", "3:10"], r"--clips-per-duration: 3 s is not one of "
                                                             r"--durations \(2, 4 s\)"),
    (["--durations", "2,4", "--clips-per-duration", "2:10"], r"the world's 2 s clips are counted by --clips"),
    (["--durations", "2,4", "--clips-per-duration", "4:1.5"], r"the clips of 4 s must be a whole number, got '1.5'"),
    (["--durations", "2,4", "--clips-per-duration", "4:8"],
     r"--clips-per-duration 4:8 gives 8 clips of 4 s, fewer than a batch \(--batch 16\)"),
    (["--durations", "2,4", "--clips", "8", "--clips-per-duration", "4:100"], r"--clips gives 8 clips of 2 s"),
    (["--durations", "2,8", "--clips", "40"],
     r"--clips 40 \(the same footage\) gives 10 clips of 8 s, fewer than a batch \(--batch 16\); "
     r"give more with --clips or --clips-per-duration 8:N")])
def test_bad_durations_fail_before_any_data_is_encoded(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        train_embedded.main(["--run-dir", str(tmp_path / "run"), *argv])
    assert not (tmp_path / "run").exists() or list((tmp_path / "run").iterdir()) == []


def test_train_embedded_trains_on_mixed_durations_and_records_them(tmp_path):
    """A few clips, a one-layer model and a few steps through the real command: each length's cache
    beside the main one, the plan and the training's shift in the exported model's metadata."""
    run, out = tmp_path / "run", tmp_path / "model.safetensors"
    argv = ["--run-dir", str(run), "--out", str(out), "--clips", "4", "--batch", "2", "--steps-video", "1",
            "--steps-audio", "1", "--steps-joint", "3", "--threads", "1", "--durations", "2:0.5,1:0.5",
            "--set", "num_layers=1", "--set", "dim=32", "--set", "ffn_dim=64", "--save-every", "2",
            "--timestep-shift", "2"]
    train_embedded.main(argv)
    assert sorted(p.name for p in run.glob("latents*")) == ["latents-1s.safetensors", "latents.safetensors"]
    with safe_open(str(run / "latents-1s.safetensors"), "pt") as f:
        assert f.metadata()["seconds"] == "1.0" and f.metadata()["n_clips"] == "8"
        assert f.metadata()["base_seed"] == str(16 * 10**9)
    with safe_open(str(out), "pt") as f:
        recorded = json.loads(f.metadata()["recipe"])["durations"]
        assert f.metadata()["ccl_shift"] == "2.0"  # the model is meant to be sampled at the shift it trained at
    assert recorded == [{"seconds": 2.0, "weight": 0.5, "clips": 4, "first_seed": 0},
                        {"seconds": 1.0, "weight": 0.5, "clips": 8, "first_seed": 16 * 10**9}]
    state = torch.load(run / "stage-joint" / "checkpoints" / "step-00000003" / "rank-00000.pt", weights_only=True)
    assert state["extra"]["data"]["durations"] == [2.0, 1.0] and state["extra"]["data"]["draws"] == 5  # 1 + 1 + 3
