"""Node layer against tests/comfy_stub (no ComfyUI): registration, loader, model adapter, guider."""

import os
import subprocess
import sys

import pytest
import torch

from pack_loader import ROOT, STUB, load_pack, node_classes, node_info

pack = load_pack()
N = node_classes(pack)
core = pack.ccl_core
import comfy.samplers  # noqa: E402  (the stub, on sys.path after load_pack)
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402


def randomize(model, std=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("ctx_logit_bias"):
                p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if "norm" in name and p.ndim == 1 else 0.0))
    return model


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("comfy_base"))
    folder_paths.set_base(path)
    pack.nodes.model_loading.register_folder()
    os.makedirs(os.path.join(path, "models", "ccl"))
    os.makedirs(os.path.join(path, "models", "diffusion_models"))
    net = randomize(core.DualStreamModel(core.tiny_config()))
    core.checkpoint.save_checkpoint(net, os.path.join(path, "models", "ccl", "tiny.safetensors"))
    core.checkpoint.save_checkpoint(net, os.path.join(path, "models", "diffusion_models", "tiny_dm.safetensors"))
    from safetensors.torch import save_file
    save_file({"encoder.conv.weight": torch.zeros(2, 2), "decoder.conv.weight": torch.zeros(2, 2)},
              os.path.join(path, "models", "diffusion_models", "a_vae.safetensors"))
    return path


@pytest.fixture(scope="module")
def model(base):
    return N["CCLModelLoader"].execute("tiny.safetensors", "default")[0]


def test_registration_metadata():
    assert len(N) >= 14
    assert not hasattr(pack, "NODE_CLASS_MAPPINGS")  # it would make ComfyUI ignore comfy_entrypoint
    for node_id, cls in N.items():
        info = node_info(cls)
        assert node_id.startswith("CCL"), node_id
        assert info["category"].startswith("CCL/"), node_id
        assert len(info["description"]) > 40, node_id
        assert info["display_name"] and info["display_name"].startswith("CCL "), node_id
        assert "execute" in vars(cls) and "define_schema" in vars(cls), node_id
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                assert len(spec) == 2 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        if info["output"]:
            assert len(info["output_name"]) == len(info["output"]) == len(info["output_tooltips"]), node_id
            assert all(info["output_tooltips"]) and info["output_name"] != info["output"], node_id


def test_every_node_has_a_help_page_naming_its_sockets():
    """WEB_DIRECTORY/docs/<NodeId>.md exists for every registered node id and names every input and output.
    The frontend fetches /extensions/<pack>/docs/<NodeId>/<locale>.md, then /extensions/<pack>/docs/<NodeId>.md
    (ComfyUI_frontend's nodeHelpService), so a page named otherwise is never shown: no other file is there."""
    docs = os.path.join(ROOT, pack.WEB_DIRECTORY, "docs")
    assert os.path.isdir(docs)
    pages = {f[:-3] for f in os.listdir(docs) if f.endswith(".md")}
    assert set(N) <= pages, f"no help page for {sorted(set(N) - pages)}: add {pack.WEB_DIRECTORY}/docs/<NodeId>.md"
    assert set(os.listdir(docs)) == {n + ".md" for n in N}, f"not a registered node id: {sorted(pages - set(N))}"
    for node_id, cls in N.items():
        text = open(os.path.join(docs, node_id + ".md")).read()
        info = node_info(cls)
        assert text.startswith(f"# {info['display_name']}\n"), node_id
        for name in list(info["input"]["required"]) + list(info["input"].get("optional", {})) + info["output_name"]:
            assert f"**{name}**" in text, (node_id, name)


def test_entrypoint_ids_match_the_shipped_api_workflows():
    """Every CCL class_type the shipped API workflows use is registered under that id, and the reverse."""
    import glob
    import json

    used = set()
    for path in glob.glob(os.path.join(ROOT, "workflows", "api", "*.json")):
        used |= {n["class_type"] for n in json.load(open(path)).values() if n["class_type"].startswith("CCL")}
    assert used and used <= set(N), sorted(used - set(N))
    assert set(N) == {"CCLModelLoader", "CCLEmptyJointLatent", "CCLSplitLatent", "CCLJoinLatents", "CCLAudioToVideo",
                      "CCLVideoToAudio", "CCLVideoOnly", "CCLAudioOnly", "CCLGuider", "CCLNullText", "CCLDecode",
                      "CCLLatentPreview", "CCLCreateVideo", "CCLSaveVideo", "CCLToyAVTextEncoderLoader",
                      "CCLToyAVTextEncode", "CCLToyAVAutoencoderLoader", "CCLImageToVideo", "CCLExtend",
                      "CCLAppendWindow", "CCLEncodeVideo"}


def test_loader_lists_both_folders_and_loads(base, model):
    names = node_info(N["CCLModelLoader"])["input"]["required"]["ckpt_name"][1]["options"]
    assert "tiny.safetensors" in names and "tiny_dm.safetensors" in names
    m = model.model
    assert m.model_type.name == "FLOW"
    assert m.model_sampling.multiplier == 1000 and m.model_sampling.shift == 5.0
    assert type(m.latent_format).__name__ == "LatentFormat"
    assert m.ccl_spec.video_channels == 4 and m.ccl_spec.fps == 4.0
    # native creation: the BaseModel built the diffusion model (Ovi's key layout) through comfy.ops
    assert isinstance(m.diffusion_model, core.DualStreamModel) and "video_model.blocks.0.self_attn.q.weight" in \
        m.diffusion_model.state_dict()
    assert type(m.diffusion_model.video_model.blocks[0].self_attn.q).__module__ == "comfy.ops"
    m2 = N["CCLModelLoader"].execute("tiny_dm.safetensors", "bf16")[0].model
    assert m2.get_dtype() == torch.bfloat16
    m8 = N["CCLModelLoader"].execute("tiny.safetensors", "fp8")[0].model
    assert m8.get_dtype() == torch.float8_e4m3fn  # storage; the inputs go in the compute dtype, never fp8
    assert m8.manual_cast_dtype == torch.float32
    assert m8.diffusion_model.video_model.blocks[0].self_attn.q.weight.dtype == torch.float8_e4m3fn
    assert m8.diffusion_model.video_model.blocks[0].norm3.weight.dtype == torch.bfloat16
    assert m.memory_required([2, 1, 4 * 8 * 8 * 8 + 3 * 32]) > 0


def test_folder_registration_goes_through_folder_paths(base, monkeypatch):
    """models/ccl is added with add_model_folder_path as the first path; its .safetensors / .sft files are
    listed from get_folder_paths (subfolders too), other files stay out, whatever get_filename_list says."""
    os.makedirs(os.path.join(base, "models", "ccl", "sub"), exist_ok=True)
    for f in ("notes.txt", os.path.join("sub", "b.sft")):
        open(os.path.join(base, "models", "ccl", f), "w").close()
    names = node_info(N["CCLModelLoader"])["input"]["required"]["ckpt_name"][1]["options"]
    assert "sub/b.sft" in names and "notes.txt" not in names
    real = folder_paths.get_filename_list
    monkeypatch.setattr(folder_paths, "get_filename_list", lambda f: [] if f == "ccl" else real(f))  # ComfyUI LTS
    assert "sub/b.sft" in pack.nodes.model_loading.list_checkpoints()
    calls = []
    monkeypatch.setattr(folder_paths, "add_model_folder_path", lambda *a, **k: calls.append((a, k)))
    pack.nodes.model_loading.register_folder()
    assert calls == [(("ccl", os.path.join(folder_paths.models_dir, "ccl")), {"is_default": True})]


def test_loader_errors_are_clear(base):
    with pytest.raises(core.checkpoint.CheckpointError, match="autoencoder.*not a CCL or Ovi"):
        N["CCLModelLoader"].execute("a_vae.safetensors", "default")
    with pytest.raises(FileNotFoundError, match="models/ccl"):
        N["CCLModelLoader"].execute("nope.safetensors", "default")


def _packed(model, batch=2, seed=0):
    lat = N["CCLEmptyJointLatent"].execute(model, 8, 8, 2.0, batch)[0]
    v, a = lat["samples"].unbind()
    g = torch.Generator().manual_seed(seed)
    v, a = torch.randn(v.shape, generator=g), torch.randn(a.shape, generator=g)
    x, shapes = comfy.utils.pack_latents([v, a])
    return v, a, x, shapes


def core_twin(model):
    """A plain ccl_core DualStreamModel with the native model's weights: the reference to compare with."""
    dm = model.model.diffusion_model
    net = core.DualStreamModel(dm.config)
    net.load_state_dict(dm.state_dict())
    return net.eval()


def _conds(model, cond_dicts, x, shapes):
    """Processed model conds as calc_cond_batch gets them (via the stub guider's processing)."""
    return [comfy.samplers._process_conds(model.model, {"k": comfy.samplers.convert_cond([c])}, x, x, None,
                                          shapes)["k"] for c in cond_dicts]


def test_model_adapter_matches_core(model):
    net = core_twin(model)
    v, a, x, shapes = _packed(model)
    text = torch.randn(2, 5, 16)
    sigma = torch.tensor([0.7, 0.3])
    clean_a = torch.randn_like(a)
    cond = [text, {"ccl_task": "a2v", "ccl_clean_audio": clean_a, "ccl_ctx_only": True}]
    (c,) = _conds(model, [cond], x, shapes)
    out = comfy.samplers.calc_cond_batch(model.model, [c], x, sigma, {})[0]
    ov, oa = comfy.utils.unpack_latents(out, shapes)
    with torch.no_grad():
        ev, _ = net(v, clean_a, sigma, sigma, text, tasks="a2v", ctx_only=torch.tensor([True, True]))
    torch.testing.assert_close(ov, v - sigma.view(-1, 1, 1, 1, 1) * ev, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(oa, clean_a, rtol=0, atol=1e-5)  # the held stream's x0 is the clean latent


def test_model_adapter_skip_and_null_text(model):
    net = core_twin(model)
    v, a, x, shapes = _packed(model, batch=1)
    text = torch.randn(1, 5, 16)
    (c,) = _conds(model, [[text, {"ccl_skip": 1, "ccl_null_text": True}]], x, shapes)
    out = comfy.samplers.calc_cond_batch(model.model, [c], x, torch.tensor([0.5]), {})[0]
    ov, oa = comfy.utils.unpack_latents(out, shapes)
    null = torch.zeros_like(text)
    with torch.no_grad():
        ev, ea = net(v, a, 0.5, 0.5, null, skip_block=1)
        without_skip, without_null = net(v, a, 0.5, 0.5, null), net(v, a, 0.5, 0.5, text, skip_block=1)
    torch.testing.assert_close(ov, v - 0.5 * ev, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(oa, a - 0.5 * ea, rtol=1e-5, atol=1e-5)
    for name, want, other in (("video", ev, 0), ("audio", ea, 1)):  # each flag changes each stream: it can fail
        for flag, ref in (("ccl_skip", without_skip), ("ccl_null_text", without_null)):
            assert (ref[other] - want).abs().max() > 1e-3, f"{flag} does not change the {name} stream"


def test_model_rejects_plain_latent(model):
    with pytest.raises(ValueError, match="joint audio-video latent"):
        model.model.diffusion_model(torch.zeros(1, 4, 8, 8, 8), torch.tensor([500.0]), torch.zeros(1, 5, 16))


def test_empty_latent_sizes(model):
    lat, fps, frames = N["CCLEmptyJointLatent"].execute(model, 16, 12, 2.0, 3)
    v, a = lat["samples"].unbind()
    assert list(v.shape) == [3, 4, 8, 12, 16] and list(a.shape) == [3, 3, 32]
    assert fps == 4.0 and frames == 8
    ovi = pack.ccl_core.latent_spec.model_spec(core.ovi_config(num_layers=1, dim=256, ffn_dim=512, num_heads=2))
    assert ovi.video_space == "wan22" and ovi.fps == 24.0
    t, h, w, length, frames, width, height = ovi.sizes(5.0, 720, 720)
    assert (t, h, w, length, frames, width, height) == (31, 44, 44, 157, 121, 704, 704)  # Ovi's 5 s clip
    assert ovi.sizes(10.0, 960, 960)[0] == 61
    assert (ovi.native_width, ovi.native_height, ovi.native_seconds) == (720, 720, 5.0)
    ovi10 = pack.ccl_core.latent_spec.model_spec(core.ovi_config(num_layers=1, dim=256, ffn_dim=512, num_heads=2,
                                                         name="ovi-960x960-10s"))
    assert (ovi10.native_width, ovi10.native_height, ovi10.native_seconds) == (960, 960, 10.0)
    with pytest.raises(ValueError, match="does not say its native size: set width, height and seconds"):
        N["CCLEmptyJointLatent"].execute(model, 0, 0, 0.0, 1)  # the tiny test model has no native size


@pytest.mark.parametrize("form,with_negative", [("joint", False), ("decoupled", False), ("cfg", False), ("ovi", False),
                                                ("none", False), ("decoupled", True), ("ovi", True)])
def test_guider_matches_core_guidance(model, form, with_negative):
    """One Euler step from sigma to 0 returns the guided x0: compare with ccl_core.guided_velocity."""
    net = core_twin(model)
    lat = N["CCLEmptyJointLatent"].execute(model, 8, 8, 1.0, 1)[0]
    v0, a0 = lat["samples"].unbind()
    g = torch.Generator().manual_seed(3)
    nv, na = torch.randn(v0.shape, generator=g), torch.randn(a0.shape, generator=g)
    text, neg = torch.randn(1, 5, 16, generator=g), torch.randn(1, 3, 16, generator=g)
    positive = [[text, {}]]
    negative = [[neg, {}]] if with_negative else None
    guider = N["CCLGuider"].execute(model, positive, form, 4.0, 3.0, 2.0, 1.5, 1, negative=negative)[0]
    comfy.samplers.CALLS.clear()
    s = 0.6
    out = guider.sample(pack.nodes.joint.nested((nv, na)), lat["samples"], None, torch.tensor([s, 0.0]))
    ov, oa = out.unbind()
    guidance = core.guidance.Guidance(form, 4.0, 3.0, 2.0, 1.5, skip_block=1)
    with torch.no_grad():
        ev, ea = core.guidance.guided_velocity(net, s * nv, s * na, s, s, text, neg if with_negative else None,
                                               guidance)
    torch.testing.assert_close(ov, s * nv - s * ev, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(oa, s * na - s * ea, rtol=1e-4, atol=1e-4)
    assert comfy.samplers.CALLS == [len(guidance.branches)]  # all branches in one model call


@pytest.mark.parametrize("form,with_negative", [("ovi", True), ("joint", True), ("decoupled", False)])
def test_guider_audio_negative_matches_core_guidance(model, form, with_negative):
    """negative_audio is the audio tower's unconditional text (Ovi's two negatives), through the
    ccl_text_audio cond key; every branch carries its audio text, so all still run as one batch."""
    net = core_twin(model)
    lat = N["CCLEmptyJointLatent"].execute(model, 8, 8, 1.0, 1)[0]
    v0, a0 = lat["samples"].unbind()
    g = torch.Generator().manual_seed(4)
    nv, na = torch.randn(v0.shape, generator=g), torch.randn(a0.shape, generator=g)
    text, neg, neg_a = (torch.randn(1, n, 16, generator=g) for n in (5, 3, 4))
    negative = [[neg, {}]] if with_negative else None
    guider = N["CCLGuider"].execute(model, [[text, {}]], form, 4.0, 3.0, 2.0, 1.5, 1, negative=negative,
                                    negative_audio=[[neg_a, {}]])[0]
    comfy.samplers.CALLS.clear()
    s = 0.6
    ov, oa = guider.sample(pack.nodes.joint.nested((nv, na)), lat["samples"], None, torch.tensor([s, 0.0])).unbind()
    guidance = core.guidance.Guidance(form, 4.0, 3.0, 2.0, 1.5, skip_block=1)
    with torch.no_grad():
        ev, ea = core.guidance.guided_velocity(net, s * nv, s * na, s, s, text, neg if with_negative else None,
                                               guidance, uncond_text_audio=neg_a)
        _, ea_one = core.guidance.guided_velocity(net, s * nv, s * na, s, s, text, neg if with_negative else None,
                                                  guidance)
    torch.testing.assert_close(ov, s * nv - s * ev, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(oa, s * na - s * ea, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(ea, ea_one, atol=1e-3)  # the audio negative is read: the check can fail
    assert comfy.samplers.CALLS == [len(guidance.branches)]  # all branches in one model call


def test_guider_audio_negative_is_one_text(model):
    two = [[torch.zeros(1, 2, 16), {}], [torch.zeros(1, 3, 16), {}]]
    with pytest.raises(ValueError, match="negative_audio must be one text encoding, got a CONDITIONING of 2"):
        N["CCLGuider"].execute(model, [[torch.zeros(1, 2, 16), {}]], "ovi", 4.0, 3.0, 2.0, 2.0, 1, negative_audio=two)
    info = node_info(N["CCLGuider"])
    assert info["input_order"]["optional"] == ["negative", "negative_audio"]  # old workflows keep loading


def test_null_text_node(model):
    (cond,) = N["CCLNullText"].execute(model)
    assert cond[0][0].shape == (1, 1, 16) and not cond[0][0].any()


def test_guider_checks_skip_block(model):
    with pytest.raises(ValueError, match="outside this model's 2 fusion blocks"):
        N["CCLGuider"].execute(model, [[torch.zeros(1, 2, 16), {}]], "ovi", 4.0, 3.0, 2.0, 2.0, 11)


def _load_in_subprocess(block: str, fail, extra_setup: str = ""):
    """Load the pack against the stub in a fresh Python where importing a module named `block` raises
    `fail`; return (stdout, stderr lines)."""
    code = (
        "import sys, importlib.util, logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        f"sys.path.insert(0, {STUB!r})\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {block!r}:\n"
        f"            raise {fail}\n"
        "sys.meta_path.insert(0, Block())\n"
        + extra_setup +
        f"spec = importlib.util.spec_from_file_location('oldpack', {os.path.join(ROOT, '__init__.py')!r}, "
        f"submodule_search_locations=[{ROOT!r}])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['oldpack'] = m; spec.loader.exec_module(m)\n"
        "print('nodes', len(m.NODE_CLASS_MAPPINGS) if hasattr(m, 'NODE_CLASS_MAPPINGS') else 'absent',\n"
        "      hasattr(m, 'comfy_entrypoint'))\n"
        "if hasattr(m, 'comfy_entrypoint'):\n"
        "    import asyncio\n"
        "    print('entrypoint', len(asyncio.run(m.comfy_entrypoint().get_node_list())))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), [line for line in out.stderr.splitlines() if line.strip()]


def test_old_comfyui_one_line():
    """Without comfy.nested_tensor (ComfyUI < 0.3.68) the pack loads with no nodes and one log line."""
    stdout, lines = _load_in_subprocess("comfy.nested_tensor", "ImportError('no ' + name)")
    assert stdout == "nodes 0 False"
    assert len(lines) == 1 and "ComfyUI >= 0.3.68" in lines[0] and "comfy.nested_tensor" in lines[0], lines


def test_any_error_at_import_is_one_line():
    """Not only an ImportError: whatever a ComfyUI lacking something raises while the nodes import gives one
    line naming it and the minimum version, no traceback, no nodes."""
    for block in ("comfy_api.v0_0_2", "comfy.samplers"):  # while the nodes import; while the pack checks ComfyUI
        stdout, lines = _load_in_subprocess(block, "RuntimeError('it broke')")
        assert stdout == "nodes 0 False", block
        assert len(lines) == 1 and "ComfyUI >= 0.3.68" in lines[0] and "RuntimeError: it broke" in lines[0], lines


def test_api_falls_back_to_latest_and_comfyui_lts_gets_an_empty_mapping():
    """Without comfy_api.v0_0_2 the nodes take comfy_api.latest; ComfyUI LTS (comfy.cmd present) also gets an
    empty NODE_CLASS_MAPPINGS next to comfy_entrypoint (its loader reads both)."""
    stdout, lines = _load_in_subprocess("comfy_api.v0_0_2", "ImportError('no ' + name)")
    assert stdout.splitlines() == ["nodes absent True", f"entrypoint {len(N)}"] and lines == [], (stdout, lines)
    lts = ("import types, importlib.machinery, comfy\n"
           "cmd = types.ModuleType('comfy.cmd'); cmd.__spec__ = importlib.machinery.ModuleSpec('comfy.cmd', None)\n"
           "sys.modules['comfy.cmd'] = cmd\n")
    stdout, lines = _load_in_subprocess("no.such.module", "ImportError", lts)
    assert stdout.splitlines() == ["nodes 0 True", f"entrypoint {len(N)}"] and lines == [], (stdout, lines)
