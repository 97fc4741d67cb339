"""The embedded ToyAV family against tests/comfy_stub (no ComfyUI): loader entry, text encoder, null text,
autoencoders as VAEs, a2v / v2a encoders and a short run through the guider to decoded frames and sound.

The diffusion model and the autoencoders here are random-init (the shipped files are trained separately);
the text encoder is the shipped one (deterministic tables).
"""

import math
import os

import pytest
import torch

from pack_loader import load_pack, node_classes, node_info

pack = load_pack()
N = node_classes(pack)
joint = pack.nodes.joint
latent_spec = pack.ccl_core.latent_spec
toyav = pack.nodes.toyav
core = pack.ccl_core
import comfy.samplers  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402

# The repo's ccl_core (the pack holds its own copy of the modules): only files and tensors cross over.
from ccl_core import DualStreamModel  # noqa: E402
from ccl_core.checkpoint import save_checkpoint  # noqa: E402
from ccl_core.toyav import autoencoders as AE  # noqa: E402
from ccl_core.toyav.embedded import stamp, toyav_config, toyav_metadata  # noqa: E402
from ccl_core.toyav.text import load_text_encoder  # noqa: E402

MODEL_FILE = "toyav_random.safetensors"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("comfy_base_toyav"))
    folder_paths.set_base(path)
    pack.nodes.model_loading.register_folder()
    for d in ("ccl", "vae"):
        os.makedirs(os.path.join(path, "models", d))
    video_ae, audio_ae = AE.VideoAE().eval(), AE.AudioAE().eval()
    with torch.no_grad():  # non-zero decoder heads, so that decoded frames and sound depend on the latent
        for m in (video_ae.decoder[-1], audio_ae.f0_head, audio_ae.noise_head):
            m.weight.normal_(0, 0.05)
    AE.save_autoencoder(video_ae, os.path.join(path, "models", "vae", "toyav_video_test.safetensors"))
    AE.save_autoencoder(audio_ae, os.path.join(path, "models", "vae", "toyav_audio_test.safetensors"))
    net = DualStreamModel(toyav_config(video_ae, audio_ae, load_text_encoder()))
    with torch.no_grad():  # the real init zeroes the output heads: give them values so outputs move
        for name, p in net.named_parameters():
            if "head" in name and p.ndim >= 2:
                p.normal_(0, 0.02)
    # as train_embedded saves it: with its latent facts, read off these autoencoders and the text encoder
    save_checkpoint(net, os.path.join(path, "models", "ccl", MODEL_FILE),
                    metadata=toyav_metadata(net.config, video_ae, audio_ae, load_text_encoder()))
    return path


@pytest.fixture(scope="module")
def model(base):
    return N["CCLModelLoader"].execute(MODEL_FILE, "default")[0]


@pytest.fixture(scope="module")
def vaes(base):
    return N["CCLToyAVAutoencoderLoader"].execute("toyav_video_test.safetensors", "toyav_audio_test.safetensors")


@pytest.fixture(scope="module")
def encoder():
    return N["CCLToyAVTextEncoderLoader"].execute("(embedded) toyav_text")[0]


def test_embedded_entries_follow_core_names():
    from ccl_core import assets
    from ccl_core.toyav.clip import PROMPTS
    assert toyav.EMBEDDED_FILES == {"(embedded) toyav_ccl": assets.MODEL_FILE,
                                    "(embedded) toyav_text": assets.TEXT_FILE,
                                    "(embedded) toyav_video_ae": assets.VIDEO_AE_FILE,
                                    "(embedded) toyav_audio_ae": assets.AUDIO_AE_FILE}
    # every file the pack ships has its embedded entry
    assert sorted(toyav.EMBEDDED_FILES.values()) == sorted(p.name for p in assets.ASSETS.glob("*.safetensors"))
    assert toyav.DEFAULT_PROMPT in PROMPTS
    for cls in (N["CCLToyAVTextEncoderLoader"], N["CCLToyAVTextEncode"], N["CCLToyAVAutoencoderLoader"]):
        assert node_info(cls)["category"] == "CCL/ToyAV"


def test_model_loader_lists_embedded_model_and_explains_a_missing_file(base, monkeypatch, tmp_path):
    names = node_info(N["CCLModelLoader"])["input"]["required"]["ckpt_name"][1]["options"]
    assert names[0] == "(embedded) toyav_ccl" and MODEL_FILE in names
    monkeypatch.setattr(toyav, "ASSETS", str(tmp_path))  # as before the trained file is installed
    with pytest.raises(FileNotFoundError, match=r"embedded ToyAV .*not installed.*toyav_ccl\.safetensors.*"
                                                r"train_embedded"):
        N["CCLModelLoader"].execute("(embedded) toyav_ccl", "default")


def test_embedded_model_loads_when_installed(base, monkeypatch, tmp_path):
    os.symlink(os.path.join(base, "models", "ccl", MODEL_FILE), tmp_path / "toyav_ccl.safetensors")
    monkeypatch.setattr(toyav, "ASSETS", str(tmp_path))
    m = N["CCLModelLoader"].execute("(embedded) toyav_ccl", "default")[0]
    assert m.model.ccl_spec.name == "toyav-ccl"


def test_toyav_spec_shift_and_latent(model):
    spec = model.model.ccl_spec
    assert (spec.fps, spec.spatial_factor, spec.audio_sample_rate) == (16.0, 8, 16000)
    assert torch.equal(torch.tensor(spec.null_text), load_text_encoder().null(1)[0])  # the empty prompt's encoding
    assert model.model.model_sampling.shift == 3.0  # the file's (ccl_core.toyav.embedded.SHIFT), not Ovi's 5.0
    lat, fps, frames = N["CCLEmptyJointLatent"].execute(model, 64, 64, 2.0, 1)
    v, a = lat["samples"].unbind()
    assert list(v.shape) == [1, 8, 16, 8, 8] and list(a.shape) == [1, 8, 125] and (fps, frames) == (16.0, 32)
    native = N["CCLEmptyJointLatent"].execute(model, 0, 0, 0.0, 1)[0]  # 0: the model's native size
    assert [list(x.shape) for x in native["samples"].unbind()] == [list(v.shape), list(a.shape)]


def test_sizes_far_beyond_the_model_warn_with_the_cost(model, caplog):
    """Ovi's 704x704, 5 s on the 64 px, 2 s model: a warning naming the native size and the step cost."""
    spec = model.model.ccl_spec
    assert (spec.native_width, spec.native_height, spec.native_seconds) == (64, 64, 2.0)
    with caplog.at_level("WARNING", logger="ccl"):
        N["CCLEmptyJointLatent"].execute(model, 128, 128, 2.0, 1)  # 4x the tokens: 10x a step
        far = [r.getMessage() for r in caplog.records]
        caplog.clear()
        N["CCLEmptyJointLatent"].execute(model, 64, 64, 2.0, 1)
        assert not caplog.records
        N["CCLEmptyJointLatent"].execute(model, 256, 256, 2.0, 1)
    assert far and "128x128, 2 s is far beyond" in far[0] and "(64x64, 2 s)" in far[0] and "10x" in far[0], far
    msg = caplog.records[0].getMessage()
    cost = spec.cost_vs_native(2.0, 256, 256)  # 16x the tokens
    assert f"about {cost:.0f}x a native one" in msg and cost == 136, msg
    # Ovi's 704x704, 5 s on this model (302x the tokens): refused before anything runs, not hours of one step
    with pytest.raises(ValueError, match=r"704x704, 5 s is refused .* about 45904x a native one \(at most 1000x"):
        N["CCLEmptyJointLatent"].execute(model, 704, 704, 5.0, 1)


def test_spec_matches_the_autoencoders(model, vaes):
    """The loaded model's spec is what its metadata says, read off the autoencoders it was saved with."""
    video_vae, audio_vae = vaes
    spec = joint.spec_of(model)
    assert (spec.temporal_factor, spec.spatial_factor, spec.audio_sample_rate) == (
        video_vae.temporal_factor, video_vae.spatial_factor, audio_vae.audio_sample_rate)
    assert (spec.fps, spec.video_space, spec.audio_space, spec.causal) == (video_vae.fps, "identity", "identity", False)
    assert (spec.native_width, spec.native_height, spec.native_seconds) == (64, 64, 2.0)
    for name in ("toyav_video_ae.safetensors", "toyav_audio_ae.safetensors"):  # the shipped files, once trained
        path = os.path.join(toyav.ASSETS, name)
        if os.path.isfile(path):
            ae = AE.load_autoencoder(path)
            if isinstance(ae, AE.VideoAE):
                assert (ae.temporal_factor, ae.spatial_factor, ae.fps) == (2, 8, 16.0)
            else:
                assert (ae.sample_rate, ae.audio_latent_rate) == (16000, 62.5)


def test_shipped_model_carries_its_latent_facts():
    """The embedded file's metadata is what stamping it with the shipped parts writes (ccl_core stamp)."""
    from ccl_core.checkpoint import infer_config, read_header
    path = os.path.join(toyav.ASSETS, toyav.EMBEDDED_MODELS[toyav.EMBEDDED_MODEL])
    if not os.path.isfile(path):
        pytest.skip("the embedded model is not installed")
    header = read_header(path)
    want = toyav_metadata(infer_config(header))
    assert {k: header.metadata.get(k) for k in want} == want


def test_unstamped_toyav_model_is_refused_then_stamped(base, tmp_path):
    """A ToyAV file saved without its latent facts names the fix; the fix adds them, tensors unchanged."""
    from safetensors import safe_open
    src = os.path.join(base, "models", "ccl", MODEL_FILE)
    with safe_open(src, "pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    net = DualStreamModel(toyav_config(AE.VideoAE(), AE.AudioAE(), load_text_encoder()))
    net.load_state_dict(state)
    bare = os.path.join(base, "models", "ccl", "toyav_unstamped.safetensors")
    save_checkpoint(net, bare)
    with pytest.raises(pack.ccl_core.header.CheckpointError, match=r"toyav-ccl checkpoint does not say its latent "
                       r"spaces.*python -m ccl_core stamp FILE"):
        N["CCLModelLoader"].execute("toyav_unstamped.safetensors", "default")
    stamp(bare)
    with safe_open(bare, "pt") as f:
        assert sorted(f.keys()) == sorted(state) and all(torch.equal(f.get_tensor(k), v) for k, v in state.items())
    spec = joint.spec_of(N["CCLModelLoader"].execute("toyav_unstamped.safetensors", "default")[0])
    assert spec.to_dict() == joint.spec_of(N["CCLModelLoader"].execute(MODEL_FILE, "default")[0]).to_dict()
    os.remove(bare)


def test_text_encode_gives_plain_conditioning(encoder):
    (cond,) = N["CCLToyAVTextEncode"].execute(encoder, "A Red circle bouncing.")
    emb, d = cond[0]
    assert len(cond) == 1 and emb.shape == (1, 5, 64) and emb.dtype == torch.float32
    torch.testing.assert_close(emb, encoder.encode(["a red circle bouncing"])[0])
    assert not emb[0, 4].any()  # padding positions are zeros
    torch.testing.assert_close(d[pack.nodes.conditioning.NULL_TEXT_KEY], encoder.null(1))
    (empty,) = N["CCLToyAVTextEncode"].execute(encoder, "")
    torch.testing.assert_close(empty[0][0], encoder.null(1))  # the empty prompt is the null text
    assert empty[0][0].any()  # ... which is not zeros


def test_text_encode_unknown_word_lists_the_vocabulary(encoder):
    with pytest.raises(ValueError, match=r"CCL ToyAV Text Encode: unknown ToyAV word.*'purple'.*vocabulary.*"
                                         r"yellow.*triangle.*blinking"):
        N["CCLToyAVTextEncode"].execute(encoder, "a purple circle bouncing")
    with pytest.raises(ValueError, match="CCL ToyAV Text Encoder Loader"):
        N["CCLToyAVTextEncode"].execute(object(), "a red circle bouncing")


def test_null_text_is_the_same_everywhere(model, encoder):
    """Empty prompt, CCL Null Text, the guider's and the task nodes' default negative, and the model's
    ccl_null_text flag all give the ToyAV encoder's null text (not zeros)."""
    null = encoder.null(1)
    (nt,) = N["CCLNullText"].execute(model)
    torch.testing.assert_close(nt[0][0], null)
    (pos,) = N["CCLToyAVTextEncode"].execute(encoder, "a green square sliding")
    plain = [[pos[0][0], {}]]  # a conditioning without the encoder's null: the model's spec supplies it
    lat, _, _ = N["CCLEmptyJointLatent"].execute(model, 64, 64, 2.0, 1)
    for positive in (pos, plain):
        _, neg, _ = N["CCLVideoOnly"].execute(positive, lat)
        torch.testing.assert_close(neg[0][0], null)
        guider = N["CCLGuider"].execute(model, positive, "decoupled", 3.0, 3.0, 2.0, 2.0, 2)[0]
        u = guider.original_conds["u"][0]
        torch.testing.assert_close(u["cross_attn"], null)
        assert u["ccl_ctx_only"] and torch.equal(guider.original_conds["c_full"][0]["cross_attn"], pos[0][0])
    # the model adapter's flag
    text = pos[0][0]
    out = model.model.extra_conds(cross_attn=text, ccl_null_text=True)
    torch.testing.assert_close(out["c_crossattn"].cond, null)
    # Ovi / other CCL models keep zeros
    ovi = latent_spec.model_spec(core.ovi_config(num_layers=1, dim=256, ffn_dim=512, num_heads=2))
    assert ovi.null_text == "zeros" and not latent_spec.null_text_for(ovi, torch.ones(1, 3, 8)).any()


def test_autoencoder_loader_and_decode(model, vaes):
    video_vae, audio_vae = vaes
    assert isinstance(video_vae, toyav.ToyAVVideoVAE) and isinstance(audio_vae, toyav.ToyAVAudioVAE)
    assert (video_vae.fps, audio_vae.audio_sample_rate, audio_vae.audio_channels) == (16.0, 16000, 1)
    lat, fps, frames = N["CCLEmptyJointLatent"].execute(model, 64, 64, 2.0, 1)
    g = torch.Generator().manual_seed(0)
    v, a = (torch.randn(t.shape, generator=g) for t in lat["samples"].unbind())
    lat["samples"] = joint.nested((v, a))
    images, audio, out_fps = N["CCLDecode"].execute(lat, video_vae, audio_vae)
    assert images.shape == (32, 64, 64, 3) and out_fps == 16.0
    assert audio["sample_rate"] == 16000 and audio["waveform"].shape == (1, 1, 32000)
    with torch.no_grad():
        torch.testing.assert_close(images, video_vae.ae.decode(v)[0])
        torch.testing.assert_close(audio["waveform"][0, 0], audio_vae.ae.decode(a)[0])


def test_autoencoder_loader_lists_embedded_and_user_files(base):
    req = {k: v[1]["options"] for k, v in node_info(N["CCLToyAVAutoencoderLoader"])["input"]["required"].items()}
    assert req["video_ae"][0] == "(embedded) toyav_video_ae" and req["audio_ae"][0] == "(embedded) toyav_audio_ae"
    assert "toyav_video_test.safetensors" in req["video_ae"]
    with pytest.raises(ValueError, match="expected a 'ccl-toyav-video-ae'"):
        N["CCLToyAVAutoencoderLoader"].execute("toyav_audio_test.safetensors", "toyav_audio_test.safetensors")


def test_audio_to_video_with_toyav_audio_vae(model, vaes, encoder):
    import torchaudio
    _, audio_vae = vaes
    lat, _, _ = N["CCLEmptyJointLatent"].execute(model, 64, 64, 2.0, 1)
    g = torch.Generator().manual_seed(1)
    wave = torch.randn(1, 2, 44100 * 3, generator=g) * 0.1  # 3 s of 44.1 kHz stereo
    (pos,) = N["CCLToyAVTextEncode"].execute(encoder, "a blue square bouncing")
    p, n, out = N["CCLAudioToVideo"].execute(pos, lat, audio_vae, {"waveform": wave, "sample_rate": 44100})
    clean = out["ccl"]["clean"]["audio"]
    assert clean.shape == (1, 8, 125)
    mono16k = torchaudio.functional.resample(wave.mean(1), 44100, 16000)[:, :32000]  # down-mixed, 16 kHz, 2 s
    with torch.no_grad():
        torch.testing.assert_close(clean, audio_vae.ae.encode(mono16k), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(n[0][0], encoder.null(1))  # no negative connected: the null text
    # a short sound is padded with silence to the latent's 2 s
    _, _, short = N["CCLAudioToVideo"].execute(pos, lat, audio_vae, {"waveform": wave[..., :22050], "sample_rate": 44100})
    assert short["ccl"]["clean"]["audio"].shape == (1, 8, 125)


def test_video_to_audio_with_toyav_video_vae(model, vaes, encoder):
    video_vae, _ = vaes
    lat, _, _ = N["CCLEmptyJointLatent"].execute(model, 64, 64, 2.0, 1)
    (pos,) = N["CCLToyAVTextEncode"].execute(encoder, "a yellow triangle sliding")
    frames = torch.rand(32, 64, 64, 3, generator=torch.Generator().manual_seed(2))
    _, _, out = N["CCLVideoToAudio"].execute(pos, lat, video_vae, frames, 16.0)
    with torch.no_grad():
        torch.testing.assert_close(out["ccl"]["clean"]["video"], video_vae.ae.encode(frames[None]))
    # another rate and size: resampled to 16 fps and 64x64
    other = torch.rand(90, 48, 80, 3)  # 3 s at 30 fps
    _, _, out = N["CCLVideoToAudio"].execute(pos, lat, video_vae, other, 30.0)
    assert out["ccl"]["clean"]["video"].shape == (1, 8, 16, 8, 8)


def test_wrappers_pad_to_whole_latents(vaes):
    video_vae, audio_vae = vaes
    assert video_vae.encode(torch.rand(5, 64, 64, 3)).shape == (1, 8, 3, 8, 8)  # 5 frames -> 6
    assert audio_vae.encode(torch.zeros(1, 1000, 1)).shape == (1, 8, math.ceil(1000 / 256))


def test_short_run_through_guider_to_video(model, vaes, encoder):
    """t2av with the UCG guider (joint form, negative = empty prompt) for 3 Euler steps, decoded to a VIDEO."""
    video_vae, audio_vae = vaes
    lat, fps, frames = N["CCLEmptyJointLatent"].execute(model, 64, 64, 2.0, 1)
    (pos,) = N["CCLToyAVTextEncode"].execute(encoder, "a red circle bouncing")
    (neg,) = N["CCLToyAVTextEncode"].execute(encoder, "")
    guider = N["CCLGuider"].execute(model, pos, "joint", 3.0, 3.0, 2.0, 2.0, 2, negative=neg)[0]
    g = torch.Generator().manual_seed(0)
    noise = joint.nested([torch.randn(t.shape, generator=g) for t in lat["samples"].unbind()])
    comfy.samplers.CALLS.clear()
    sigmas = torch.tensor([1.0, 0.75, 0.4, 0.0])
    out = guider.sample(noise, lat["samples"], None, sigmas)
    assert comfy.samplers.CALLS == [2, 2, 2]  # u and c_full in one batch per step
    result = dict(lat, samples=out)
    images, audio, out_fps = N["CCLDecode"].execute(result, video_vae, audio_vae)
    assert torch.isfinite(images).all() and torch.isfinite(audio["waveform"]).all()
    (video,) = N["CCLCreateVideo"].execute(images, out_fps, audio)
    comp = video.get_components()
    assert comp.images.shape == (32, 64, 64, 3) and comp.audio["waveform"].shape == (1, 1, 32000)
