"""Clean prefixes in the node layer against tests/comfy_stub: i2av (CCL Task: Image to Video+Audio) and
extension (CCL Extend, CCL Append Window), held by the model adapter under native and CCL guiders.

The i2av parity test runs the shipped embedded ToyAV model (ccl_core/assets) through the nodes and
through ccl_core.generate with the same noise; the rest use the tiny random model.
"""

import pytest
import torch

from conftest import randomize, tiny_inputs
from pack_loader import load_pack, node_classes

pack = load_pack()
N = node_classes(pack)
joint = pack.nodes.joint
latent_spec = pack.ccl_core.latent_spec
core = pack.ccl_core
import comfy.samplers  # noqa: E402  (the stub, on sys.path after load_pack)
import folder_paths  # noqa: E402

from ccl_core.generate import generate, image_latent  # noqa: E402
from ccl_core.guidance import Guidance  # noqa: E402
from ccl_core.sampling import flow_sigmas  # noqa: E402

SIGMAS = torch.tensor([1.0, 0.8, 0.5, 0.2, 0.0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder_paths.set_base(str(tmp_path_factory.mktemp("comfy_base_prefix")))
    torch.manual_seed(0)
    net = randomize(core.DualStreamModel(core.tiny_config())).eval()
    return pack.nodes.comfy_model.build_model(net, latent_spec.model_spec(net.config)), net


def _noise(latent, seed=0):
    g = torch.Generator().manual_seed(seed)
    return joint.nested([torch.randn(t.shape, generator=g) for t in latent["samples"].unbind()])


def _cfg_sample(model, pos, neg, latent, seed=0, cfg=3.0):
    """A native CFGGuider (KSampler's) run with the stub's Euler."""
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(pos, neg)
    guider.set_cfg(cfg)
    return dict(latent, samples=guider.sample(_noise(latent, seed), latent["samples"], None, SIGMAS))


def _ucg_sample(model, pos, neg, latent, seed=0, form="joint"):
    guider = N["CCLGuider"].execute(model, pos, form, 3.0, 3.0, 2.0, 2.0, 1, negative=neg)[0]
    return dict(latent, samples=guider.sample(_noise(latent, seed), latent["samples"], None, SIGMAS))


def test_adapter_holds_prefixes_and_matches_core(tiny):
    """One batch mixing t2av, i2av and extend rows: the model reads the clean latent on each prefix, its denoised
    value there is that latent, and everything else is what ccl_core's model gives for the same prefixes."""
    model, net = tiny
    dm = model.model.diffusion_model
    video, audio, _, text = tiny_inputs(3, cfg=net.config)
    t = torch.tensor([0.9, 0.6, 0.3])
    g = torch.Generator().manual_seed(5)
    clean_v, clean_a = torch.randn(video.shape, generator=g), torch.randn(audio.shape, generator=g)
    names = ["t2av", "i2av", "extend"]
    ids = torch.tensor([pack.ccl_core.routing.task_index(k) for k in names])
    vp, ap = torch.tensor([0, 0, 2]), torch.tensor([0, 0, 9])
    with torch.no_grad():
        v, a = dm([video, audio], t * 1000.0, context=text, ccl_task=ids, ccl_clean_video=clean_v,
                  ccl_clean_audio=clean_a, ccl_prefix_video=vp, ccl_prefix_audio=ap)
        held_v = torch.zeros_like(video, dtype=torch.bool)
        held_v[1, :, :1] = held_v[2, :, :2] = True
        held_a = torch.zeros_like(audio, dtype=torch.bool)
        held_a[2, :, :9] = True
        ref_v, ref_a = net(torch.where(held_v, clean_v, video), torch.where(held_a, clean_a, audio), t, t, text,
                           tasks=names, video_prefix=torch.tensor([0, 1, 2]), audio_prefix=ap)
    x0_v, x0_a = video - t.view(-1, 1, 1, 1, 1) * v, audio - t.view(-1, 1, 1) * a
    torch.testing.assert_close(x0_v[held_v], clean_v[held_v], atol=1e-5, rtol=0)
    torch.testing.assert_close(x0_a[held_a], clean_a[held_a], atol=1e-5, rtol=0)
    torch.testing.assert_close(v[~held_v], ref_v[~held_v], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a[~held_a], ref_a[~held_a], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ref_v[1, :, 1:], net(video, audio, t, t, text)[0][1, :, 1:], atol=1e-3)  # it matters
    with pytest.raises(ValueError, match="extend.*needs the clean span's length"):
        dm([video, audio], t * 1000.0, context=text, ccl_task=ids, ccl_clean_video=clean_v, ccl_clean_audio=clean_a)
    with pytest.raises(ValueError, match="i2av needs the clean video latent; set it with the CCL task node"):
        dm([video, audio], t * 1000.0, context=text, ccl_task=ids[1:2].expand(3))


def test_extend_chain_holds_the_overlap_under_native_and_ccl_guiders(tiny):
    """window 1 -> Extend -> sample (CFGGuider, then the UCG guider) -> Append -> Extend -> sample -> Append: the
    overlap leaves the sampler at the clip's values (exactly after the CCL nodes restore them), and the clip grows
    by the window less the overlap, picture and sound alike."""
    model, _ = tiny
    lat = N["CCLEmptyJointLatent"].execute(model, 8, 8, 2.0, 1)[0]
    pos, neg = [[torch.randn(1, 5, 16), {}]], [[torch.zeros(1, 5, 16), {}]]
    clip = _cfg_sample(model, pos, neg, lat, seed=1)
    for i, sample in enumerate((_cfg_sample, _ucg_sample)):
        p, n, window = N["CCLExtend"].execute(pos, clip, 0.5, 2.0, negative=neg)
        rec = window["ccl"]["extend"]
        assert p[0][1]["ccl_task"] == n[0][1]["ccl_task"] == "extend"
        assert (p[0][1]["ccl_prefix_video"], p[0][1]["ccl_prefix_audio"]) == (2, 32 + 24 * i - rec["audio_start"])
        out = sample(model, p, n, window, seed=2 + i)
        wv, wa = out["samples"].unbind()
        cv, ca = pack.nodes.joint.restore_held(*clip["samples"].unbind(), clip.get("ccl", {}))
        tail_v, tail_a = cv[:, :, rec["video_start"]:], ca[:, :, rec["audio_start"]:]
        k, m = tail_v.shape[2], tail_a.shape[2]
        torch.testing.assert_close(wv[:, :, :k], tail_v, atol=1e-5, rtol=0)  # the sampler's own output
        torch.testing.assert_close(wa[:, :, :m], tail_a, atol=1e-5, rtol=0)
        assert (wv[:, :, k:] - window["samples"].unbind()[0][:, :, k:]).abs().max() > 0.01  # generated after it
        sv, sa = N["CCLSplitLatent"].execute(out)
        assert torch.equal(sv["samples"][:, :, :k], tail_v) and torch.equal(sa["samples"][:, :, :m], tail_a)
        (joined,) = N["CCLAppendWindow"].execute(clip, out)
        jv, ja = joined["samples"].unbind()
        assert jv.shape[2] == cv.shape[2] + 6 and ja.shape[2] == rec["audio_start"] + 32
        assert torch.equal(jv[:, :, :cv.shape[2]], cv) and torch.equal(ja[:, :, :rec["audio_start"]], ca[:, :, :rec["audio_start"]])
        assert torch.equal(jv[:, :, cv.shape[2]:], sv["samples"][:, :, k:])
        clip = joined
    v, a = clip["samples"].unbind()
    assert (v.shape[2], a.shape[2]) == (20, 80)  # 2 s + 2 x 1.5 s at 4 latent frames and 16 audio latents a second
    images, audio, fps = N["CCLLatentPreview"].execute(clip)
    assert images.shape[0] == 20 and abs(audio["waveform"].shape[-1] / audio["sample_rate"] - 5.0) < 1e-3


def test_extend_and_append_refuse_bad_inputs(tiny):
    model, _ = tiny
    lat = N["CCLEmptyJointLatent"].execute(model, 8, 8, 2.0, 1)[0]
    pos = [[torch.randn(1, 5, 16), {}]]
    with pytest.raises(ValueError, match=r"overlap \(2 s\) must be shorter than the window \(2 s\)"):
        N["CCLExtend"].execute(pos, lat, 2.0, 2.0)
    with pytest.raises(ValueError, match=r"1.9 s of overlap is 8 latent frames: the overlap must be 1..7 .*clip has 8"):
        N["CCLExtend"].execute(pos, lat, 1.9, 3.0)
    with pytest.raises(ValueError, match="does not say its native clip length; set seconds"):
        N["CCLExtend"].execute(pos, lat, 0.5, 0.0)  # the tiny model has no native length
    with pytest.raises(ValueError, match="CCL Extend needs a joint audio-video LATENT"):
        N["CCLExtend"].execute(pos, {"samples": torch.zeros(1, 4, 8, 8, 8)}, 0.5, 2.0)
    _, _, window = N["CCLExtend"].execute(pos, lat, 0.5, 2.0)
    with pytest.raises(ValueError, match="window was not made by CCL Extend"):
        N["CCLAppendWindow"].execute(lat, lat)
    longer = N["CCLEmptyJointLatent"].execute(model, 8, 8, 3.0, 1)[0]
    with pytest.raises(ValueError, match="continues a clip of 8 latent frames .* the clip given has 12"):
        N["CCLAppendWindow"].execute(longer, window)
    other = dict(lat, samples=joint.nested([t + 1 for t in lat["samples"].unbind()]))
    with pytest.raises(ValueError, match="continues another clip of the same length"):
        N["CCLAppendWindow"].execute(other, window)
    foreign = dict(window, ccl={**window["ccl"], "spec": {**window["ccl"]["spec"], "name": "other", "video_channels": 8}})
    with pytest.raises(ValueError, match=r"window is a latent of another model \(other\)"):
        N["CCLAppendWindow"].execute(lat, foreign)


# ---------------------------------------------------------------------- i2av on the embedded model
@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    folder_paths.set_base(str(tmp_path_factory.mktemp("comfy_base_i2av")))
    pack.nodes.model_loading.register_folder()
    toyav = pack.nodes.toyav
    try:
        model = N["CCLModelLoader"].execute(toyav.EMBEDDED_MODEL, "default")[0]
    except FileNotFoundError as e:
        pytest.skip(str(e))
    video_vae, audio_vae = N["CCLToyAVAutoencoderLoader"].execute()
    encoder = N["CCLToyAVTextEncoderLoader"].execute()[0]
    return model, video_vae, audio_vae, encoder


def _toyav_frame(seed=3):
    from ccl_lab.generator import generate_clip
    return torch.as_tensor(generate_clip(seed, "green", "circle", "bouncing").frames[0]).float()


def test_i2av_through_the_nodes_equals_core_generate(embedded):
    """CCL Task: Image to Video+Audio -> UCG guider -> Euler on the flow sigmas equals ccl_core.generate(task=
    "i2av") with the same noise, prompt, null text and guidance; the first latent frame is the image's exactly."""
    from ccl_core.toyav.embedded import load_pipeline

    model, video_vae, audio_vae, encoder = embedded
    image = _toyav_frame()
    steps, seed, prompt = 2, 4, "a green circle bouncing"
    with torch.no_grad():
        want = generate(load_pipeline(), prompt, seed=seed, steps=steps, sampler="euler", shift=3.0,
                        guidance=Guidance("joint", 3.0, 3.0), task="i2av", image=image)
    lat = N["CCLEmptyJointLatent"].execute(model, 64, 64, 2.0, 1)[0]
    (pos,) = N["CCLToyAVTextEncode"].execute(encoder, prompt)
    (neg,) = N["CCLToyAVTextEncode"].execute(encoder, "")
    p, n, lat = N["CCLImageToVideo"].execute(pos, lat, video_vae, image[None])
    assert p[0][1]["ccl_task"] == "i2av" and lat["ccl"]["prefix"] == {"video": 1, "audio": 0}
    guider = N["CCLGuider"].execute(model, p, "joint", 3.0, 3.0, 2.0, 2.0, 2, negative=n)[0]
    g = torch.Generator().manual_seed(seed)
    noise = joint.nested([torch.randn(t.shape, generator=g) for t in lat["samples"].unbind()])
    out = guider.sample(noise, lat["samples"], None, flow_sigmas(steps, 3.0))
    sv, sa = N["CCLSplitLatent"].execute(dict(lat, samples=out))
    with torch.no_grad():
        first = image_latent(video_vae.ae, image)
    assert torch.equal(sv["samples"][:, :, :1], first.to(sv["samples"]))
    torch.testing.assert_close(sv["samples"], want.video_latent, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(sa["samples"], want.audio_latent, atol=1e-4, rtol=1e-4)
    # a native CFGGuider (KSampler's) holds the same frame
    ks = _cfg_sample(model, p, n, lat, seed=1)
    torch.testing.assert_close(ks["samples"].unbind()[0][:, :, :1], first, atol=1e-5, rtol=0)


def test_i2av_fits_the_image_and_refuses_bad_ones(embedded, caplog):
    model, video_vae, _, encoder = embedded
    lat = N["CCLEmptyJointLatent"].execute(model, 64, 64, 2.0, 2)[0]
    (pos,) = N["CCLToyAVTextEncode"].execute(encoder, "a green circle bouncing")
    image = _toyav_frame()
    # a wider picture: scaled to cover 64x64 and centre-cropped (media.cover_crop), with a warning
    wide = torch.nn.functional.interpolate(image.permute(2, 0, 1)[None], size=(64, 72), mode="bilinear")
    wide = wide[0].permute(1, 2, 0)[None]
    with caplog.at_level("WARNING", logger="ccl"):
        _, _, out = N["CCLImageToVideo"].execute(pos, lat, video_vae, wide)
    assert any("72x64 image is centre-cropped to the video's 64x64: 11% of it is cut away" in r.getMessage()
               for r in caplog.records), caplog.records
    fitted, _ = core.media.cover_crop(wide[0], (64, 64))
    with torch.no_grad():
        want = image_latent(video_vae.ae, fitted)
    clean = out["ccl"]["clean"]["video"]
    assert clean.shape[0] == 2 and torch.equal(clean[:, :, :1], want.expand(2, -1, -1, -1, -1))
    assert torch.equal(out["samples"].unbind()[0], clean)
    caplog.clear()
    with caplog.at_level("WARNING", logger="ccl"):
        N["CCLImageToVideo"].execute(pos, lat, video_vae, image[None])
    assert not caplog.records  # the right size: nothing cut
    with pytest.raises(ValueError, match=r"160x64 image .* would crop away 60% of it; crop or pad the image"):
        N["CCLImageToVideo"].execute(pos, lat, video_vae, torch.rand(1, 64, 160, 3))
    with pytest.raises(ValueError, match=r"the image must be an IMAGE \[N, H, W, 3\].*got \[64, 64, 3\]"):
        N["CCLImageToVideo"].execute(pos, lat, video_vae, image)
    with pytest.raises(ValueError, match=r"3 images for a latent of batch 2; give one image, or one per clip"):
        N["CCLImageToVideo"].execute(pos, lat, video_vae, image[None].expand(3, -1, -1, -1))

    class OtherVAE:  # a VAE of another model: 16 latent channels
        def encode(self, pixels):
            return torch.zeros(1, 16, 1, 8, 8)

    with pytest.raises(ValueError, match=r"video VAE gave a latent \[1, 16, 1, 8, 8\]; this model needs \[B, 8,"):
        N["CCLImageToVideo"].execute(pos, lat, OtherVAE(), image[None])


# ---------------------------------------------------------------------- a VIDEO continued: CCL Encode Video+Audio
def _video(frames, fps, wave, sample_rate):
    from fractions import Fraction

    from comfy_api.latest import InputImpl, Types
    audio = None if wave is None else {"waveform": wave, "sample_rate": sample_rate}
    return InputImpl.VideoFromComponents(Types.VideoComponents(images=frames, frame_rate=Fraction(fps), audio=audio))


def test_encode_video_feeds_extend(embedded):
    """A ToyAV-size video with sound encodes to exactly the autoencoders' latents, and CCL Extend's clean prefix
    is that clip's last latent frames and the sound from the same instant."""
    from ccl_lab.generator import generate_clip

    model, video_vae, audio_vae, encoder = embedded
    clip = generate_clip(3, "green", "circle", "bouncing")
    frames, wave = torch.as_tensor(clip.frames).float(), torch.as_tensor(clip.waveform).float()
    (lat,) = N["CCLEncodeVideo"].execute(model, _video(frames, 16, wave[None, None], 16000), video_vae, audio_vae)
    v, a = lat["samples"].unbind()
    with torch.no_grad():
        want_v = video_vae.encode(frames)
        want_a = audio_vae.encode(wave[None, :, None])
    assert torch.equal(v, want_v) and torch.equal(a, want_a) and v.shape[2] == 16, (v.shape, a.shape)
    (pos,) = N["CCLToyAVTextEncode"].execute(encoder, "a green circle bouncing")
    p, _, window = N["CCLExtend"].execute(pos, lat, 0.5, 2.0)
    cont = core.extension.continuation(v, a, 4, 8.0, 62.5)
    wv, wa = window["samples"].unbind()
    assert window["ccl"]["prefix"] == {"video": 4, "audio": cont.audio_prefix} and p[0][1]["ccl_task"] == "extend"
    assert torch.equal(wv[:, :, :4], v[:, :, -4:])
    assert torch.equal(wa[:, :, :cont.audio_prefix], a[:, :, cont.audio_start:cont.audio_start + cont.audio_prefix])


def test_encode_video_resamples_trims_and_refuses_bad_videos(embedded):
    """A 30 fps, 44.1 kHz stereo, 96x80 video of 1.3 s: resampled to 16 fps and 64x64, trimmed to whole latent
    frames (20 model frames -> 10 latent frames, 1.25 s) and the sound to the same 1.25 s."""
    model, video_vae, audio_vae, _ = embedded
    g = torch.Generator().manual_seed(0)
    frames, wave = torch.rand(39, 80, 96, 3, generator=g), torch.randn(1, 2, 57330, generator=g) * 0.1
    (lat,) = N["CCLEncodeVideo"].execute(model, _video(frames, 30, wave, 44100), video_vae, audio_vae)
    v, a = lat["samples"].unbind()
    assert list(v.shape) == [1, 8, 10, 8, 8] and list(a.shape) == [1, 8, 79], (v.shape, a.shape)
    assert lat["ccl"]["spec"] == joint.spec_of(model).to_dict()
    with pytest.raises(ValueError, match=r"the video has no audio; .*add a soundtrack.*Video to Audio"):
        N["CCLEncodeVideo"].execute(model, _video(frames, 30, None, 0), video_vae, audio_vae)
    with pytest.raises(ValueError, match=r"the video has no frames"):
        N["CCLEncodeVideo"].execute(model, _video(frames[:0], 30, wave, 44100), video_vae, audio_vae)
    with pytest.raises(ValueError, match=r"lasts 0.0667 s .*shorter than one latent frame .*0.125 s at 16 fps"):
        N["CCLEncodeVideo"].execute(model, _video(frames[:2], 30, wave, 44100), video_vae, audio_vae)
