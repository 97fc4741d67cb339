"""A folder of ToyAV mp4s (the project's generator) becomes a latent cache through the ToyAV encoders."""

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = (0, 1, 2, 3, 4)


def write_clip(folder, name, clip, seconds=None):
    from ccl_core.media import write_mp4
    frames, wave = clip.frames, clip.waveform
    if seconds is not None:
        frames, wave = frames[:int(seconds * 16)], wave[:int(seconds * 16000)]
    write_mp4(folder / f"{name}.mp4", frames, 16, wave, 16000)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """Five good ToyAV clips and three that must be refused (unreadable, no caption, too short)."""
    from ccl_lab import generate_clip
    folder = tmp_path_factory.mktemp("clips")
    clips = {}
    for seed in SEEDS:
        clip = clips[f"clip{seed}"] = generate_clip(seed)
        write_clip(folder, f"clip{seed}", clip)
        (folder / f"clip{seed}.txt").write_text(clip.prompt + "\n")
    (folder / "broken.mp4").write_bytes(b"not an mp4 at all" * 10)
    (folder / "broken.txt").write_text("a red circle bouncing")
    write_clip(folder, "nocaption", generate_clip(9))
    write_clip(folder, "short", generate_clip(10), seconds=1.0)
    (folder / "short.txt").write_text("a red circle bouncing")
    return folder, clips


@pytest.fixture(scope="module")
def encoders():
    from ccl_train.encoders import ToyAVEncoders
    return ToyAVEncoders()


@pytest.fixture(scope="module")
def cache_dir(clip_folder, encoders, tmp_path_factory):
    from ccl_train.cache import encode_folder
    out = tmp_path_factory.mktemp("cache") / "c"
    encode_folder(clip_folder[0], out, encoders, shard_size=2, batch_size=3)
    return out


def test_folder_becomes_sharded_cache(clip_folder, encoders, cache_dir):
    from ccl_train.cache import LatentCache
    _, clips = clip_folder
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    assert manifest["count"] == len(SEEDS) and [len(s["clips"]) for s in manifest["shards"]] == [2, 2, 1]
    refused = manifest["refused"]
    assert set(refused) == {"broken.mp4", "nocaption.mp4", "short.mp4"}
    assert "unreadable" in refused["broken.mp4"] and "no caption" in refused["nocaption.mp4"]
    assert "too short" in refused["short.mp4"]
    assert manifest["encoders"] == encoders.identity()

    cache = LatentCache(cache_dir, expect=encoders.identity())
    data = cache.tensors(range(len(cache)))
    assert cache.names == [f"clip{s}" for s in SEEDS]
    assert list(data["video"].shape[1:]) == list(encoders.video_ae.latent_shape())
    assert list(data["audio"].shape[1:]) == list(encoders.audio_ae.latent_shape())
    exact = {k: [] for k in ("video", "audio")}
    for name in cache.names:  # the generator's own frames and waveform, before H.264 / AAC
        exact["video"].append(encoders.encode_video(torch.from_numpy(clips[name].frames)[None]))
        exact["audio"].append(encoders.encode_audio(torch.from_numpy(clips[name].waveform)[None]))
    for key, parts in exact.items():
        ref = torch.cat(parts)
        err = (data[key] - ref).square().mean() / ref.square().mean()
        assert err < 0.2, (key, float(err))  # H.264 / AAC move the latents a little (video ~0.05-0.1) ...
        dist = torch.cdist(data[key].flatten(1), ref.flatten(1))
        assert torch.equal(dist.argmin(1), torch.arange(len(SEEDS)))  # ... never towards another clip
    prompts = [clips[n].prompt for n in cache.names]
    assert torch.equal(data["text"], encoders.encode_text(prompts))
    assert torch.equal(cache.null_text(), encoders.null_text())
    sub = cache.tensors([3, 0])
    assert torch.equal(sub["video"], data["video"][[3, 0]])


def test_cache_refuses_other_encoders_and_other_models(cache_dir, encoders):
    from ccl_core import tiny_config
    from ccl_core.toyav.embedded import toyav_config
    from ccl_train.cache import LatentCache
    other = dict(encoders.identity(), video="toyav-video-ae:0000000000000000")
    with pytest.raises(ValueError, match="made by other encoders"):
        LatentCache(cache_dir, expect=other)
    cache = LatentCache(cache_dir)
    cache.check_model(toyav_config(encoders.video_ae, encoders.audio_ae, encoders.text))
    with pytest.raises(ValueError, match="video channels 8 \\(model 4\\)"):
        cache.check_model(tiny_config())
    with pytest.raises(FileNotFoundError, match="not a latent cache"):
        LatentCache(cache_dir.parent)


def test_rank_shares_and_batches(cache_dir):
    from ccl_train.cache import LatentCache
    cache = LatentCache(cache_dir)
    train, held = cache.split(1)
    assert held == [4] and train == [0, 1, 2, 3]
    b0 = next(iter(cache.batches(train, 2, rank=0, world_size=2)))
    all_video = cache.tensors(range(5))["video"]
    rows = [int(np.argmin([(v - all_video[i]).abs().sum() for i in range(5)])) for v in b0["video"]]
    assert sorted(rows) == [0, 2]  # rank 0 of 2 reads clips 0 and 2
    with pytest.raises(ValueError, match="fewer than batch_size"):
        cache.batches(train, 3, rank=1, world_size=2)


def test_caption_tags():
    from ccl_train.cache import ClipRefused, read_caption

    def check(tmp, text):
        p = tmp / "c.txt"
        p.write_text(text)
        return read_caption(p)

    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ok = "A man says <S>hello there<E>. <AUDCAP>male voice, quiet room<ENDAUDCAP>"
        assert check(d, ok + "\n") == ok
        for bad, why in (("<S>hi", "never closed"), ("hi<E>", "without its opening"),
                         ("<S>a <AUDCAP>b<ENDAUDCAP><E>", "do not nest"), ("  \n", "empty")):
            with pytest.raises(ClipRefused, match=why):
                check(d, bad)


def test_recipe_turns_a_tiny_ovi_layout_model_into_ccl(cache_dir, encoders, tmp_path):
    """Both stages from a clip folder's cache: context tokens added, towers frozen, then everything."""
    from ccl_core import DualStreamModel
    from ccl_core.checkpoint import load_checkpoint, save_checkpoint
    from ccl_core.toyav.embedded import toyav_config
    from ccl_train.recipe import main
    from conftest import randomize

    torch.manual_seed(0)
    ovi = randomize(DualStreamModel(toyav_config(
        encoders.video_ae, encoders.audio_ae, encoders.text, dim=32, ffn_dim=64, num_heads=2, num_layers=2,
        freq_dim=16, audio_embed_hidden=32, fusion="ovi", n_ctx=0, tarp_window=None)), std=0.05)
    start = tmp_path / "ovi-tiny.safetensors"
    save_checkpoint(ovi, start)
    root = tmp_path / "run"
    overrides = {"fusion": "ccl", "n_ctx": 2, "ctx_logit_init": -10.0, "tarp_window": 2, "aligned_rope": True,
                 "audio_rope_scale": None}
    argv = ["--pretrained", str(start), "--cache", str(cache_dir), "--run-root", str(root), "--batch-size", "2",
            "--holdout", "1", "--model-overrides", json.dumps(overrides), "--set", "common.fsdp_param_dtype=fp32",
            "--set", "common.warmup_steps=0", "--set", "fusion.steps=2", "--set", "joint.steps=2",
            "--set", "joint.lr_towers=1e-3", "--set", "common.ema_decay=null"]
    main(argv)

    fusion = load_checkpoint(root / "fusion.safetensors", dtype="fp32")
    joint = load_checkpoint(root / "joint.safetensors", dtype="fp32")
    assert fusion.config.n_ctx == 2 and fusion.config.fusion == "ccl" and fusion.config.tarp_window == 2
    assert fusion.config.audio_rope_scale is None and joint.config == fusion.config
    start_sd = {k: v.to(torch.bfloat16).float() for k, v in ovi.state_dict().items()}  # exports are bf16
    cross = {id(p) for p in fusion.param_groups()[0]}
    names = {n for n, p in fusion.named_parameters() if id(p) in cross}
    assert any("ctx_tokens" in n for n in names)
    for n, p in fusion.state_dict().items():
        if n not in names:
            assert torch.equal(p, start_sd[n]), n  # towers frozen in the fusion stage
    assert any(not torch.equal(p, fusion.state_dict()[n]) for n, p in joint.state_dict().items() if n not in names)
    validation = json.loads((root / "fusion.validation.json").read_text())
    assert set(validation) == {"t2v", "t2a", "t2av", "v2a", "a2v"}
    assert all(np.isfinite(v) for losses in validation.values() for v in losses.values())
    assert (root / "joint.validation.json").exists()
    assert (root / "fusion.done").exists() and (root / "joint.done").exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != "recipe.json"}
    main(argv)  # a rerun finds both stages done and changes nothing
    assert stamps == {p.name: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != "recipe.json"}
    other = cache_dir.parent / "other"
    import shutil
    shutil.copytree(cache_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["encoders"]["text"] = "toyav-text:another"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match="latents of other encoders"):
        main([*argv[:2], "--cache", str(other), *argv[4:]])


def test_ovi_encoders_with_small_random_weights(clip_folder, tmp_path):
    """The real-encoder path (diffusers' Wan VAE, transformers' umT5) on tiny random-weight configs; skipped
    where those optional libraries are not installed (they are not in the requirements)."""
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from ccl_lab import world
    from ccl_train.cache import LatentCache, encode_folder, load_clip
    from ccl_train.encoders import OviEncoders

    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, is_residual=True,
                                     patch_size=2, scale_factor_spatial=16, latents_mean=[0.1, -0.2, 0.3, 0.0],
                                     latents_std=[1.5, 0.5, 2.0, 1.0], in_channels=12, out_channels=12)
    umt5 = transformers.UMT5EncoderModel(transformers.UMT5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32,
                                                                 num_layers=1, num_heads=2))
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "</s>", *world.PROMPTS[0].split(), *world.COLOURS,
                                         *world.SHAPES, *world.MOTIONS])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")

    class AudioHook(torch.nn.Module):  # stands in for MMAudio's VAE: 16 kHz -> 20 channels at 31.25 / s
        identity = "test-random-conv"

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 20, 512, stride=512)

        def forward(self, wave):
            return self.conv(wave[:, None])

    with pytest.raises(ValueError, match="MMAudio"):
        OviEncoders(vae, umt5, tokenizer=tokenizer)
    enc = OviEncoders(vae, umt5, audio_encoder=AudioHook(), tokenizer=tokenizer, dtype=torch.float32, fps=16.0,
                      frames=29, size=(64, 64), text_len=8)
    manifest = encode_folder(clip_folder[0], tmp_path / "c", enc, shard_size=8)
    assert manifest["count"] == len(SEEDS) and manifest["latent_rates"] == {"video": 4.0, "audio": 31.25}
    cache = LatentCache(tmp_path / "c", expect=enc.identity())
    data = cache.tensors(range(len(cache)))
    assert list(data["video"].shape) == [5, 4, 8, 4, 4] and list(data["audio"].shape) == [5, 20, 56]
    frames, _ = load_clip(clip_folder[0] / "clip0.mp4", enc)
    with torch.no_grad():
        z = vae.encode(frames.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist.mode()
    z = (z - torch.tensor([0.1, -0.2, 0.3, 0.0]).view(1, -1, 1, 1, 1)) / torch.tensor([1.5, 0.5, 2.0, 1.0]).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(data["video"][0], z[0])
    words = len(clip_folder[1]["clip0"].prompt.split())
    assert data["text"][0, :words].abs().sum(-1).min() > 0 and data["text"][0, words:].abs().sum() == 0


def test_clips_are_resampled_resized_and_center_cropped(encoders, tmp_path):
    """A wide 25 fps, 44.1 kHz stereo clip comes out as the encoders' 16 fps, 64 x 64 center, 16 kHz mono."""
    from ccl_core.media import write_mp4
    from ccl_train.cache import load_clip

    frames = torch.zeros(75, 96, 192, 3)  # 3 s at 25 fps, twice as wide as high
    frames[:, :, :48, 0] = 1.0  # red left quarter, green middle half, blue right quarter
    frames[:, :, 48:144, 1] = 1.0
    frames[:, :, 144:, 2] = 1.0
    t = torch.arange(3 * 44100) / 44100
    wave = torch.stack([torch.sin(2 * torch.pi * 440 * t), torch.sin(2 * torch.pi * 440 * t)]) * 0.5
    write_mp4(tmp_path / "wide.mp4", frames, 25, wave, 44100)
    video, audio = load_clip(tmp_path / "wide.mp4", encoders)
    assert video.shape == (32, 64, 64, 3) and audio.shape == (32000,)
    mean = video.mean((0, 1, 2))
    assert mean[1] > 0.9 and mean[0] < 0.05 and mean[2] < 0.05  # only the middle half is kept
    spectrum = torch.fft.rfft(audio[4000:20000]).abs()
    assert abs(int(spectrum.argmax()) - 440) < 3  # 1 Hz bins: the 440 Hz tone survives at 16 kHz
