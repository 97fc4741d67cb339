"""Scaled-fp8 files in the native model (against tests/comfy_stub): the loader keeps them in fp8 the way
each ComfyUI generation does, chosen by feature (scaled_fp8_route), and the output is the file's.

Feature sets: 0.12+ (comfy.utils.convert_old_quants -> comfy.ops.mixed_precision_ops), 0.3.x
(comfy.ops.scaled_fp8_ops via the model config's scaled_fp8), neither (dequantized on load). The
real ComfyUI check of the same paths (LoRA, lowvram, block swap) is tests/comfy_native_check.py.
"""

import pytest
import torch

from pack_loader import load_pack
from scaled_fp8 import write_scaled

pack = load_pack()
core = pack.ccl_core
import comfy.ops  # noqa: E402  (the stub, on sys.path after load_pack)
import comfy.supported_models_base  # noqa: E402
import comfy.utils  # noqa: E402

native = pack.nodes.comfy_model
loading = pack.nodes.model_loading
checkpoint = pack.ccl_core.checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from conftest import randomize
    torch.manual_seed(0)
    net = randomize(core.DualStreamModel(core.tiny_config())).eval()
    d = tmp_path_factory.mktemp("scaled")
    plain = d / "tiny.safetensors"
    checkpoint.save_checkpoint(net, plain)
    path = d / "tiny_fp8_scaled.safetensors"
    write_scaled(plain, path)
    ref = checkpoint.load_checkpoint(path, dtype="fp32")  # the file dequantized by hand (ccl_core)
    return path, ref


def features(monkeypatch, version):
    """Present only the scaled-fp8 features of one ComfyUI generation."""
    if version in ("0.3", "none"):
        monkeypatch.delattr(comfy.utils, "convert_old_quants")
        monkeypatch.delattr(comfy.supported_models_base.BASE, "quant_config")
    if version in ("0.12", "none"):
        monkeypatch.delattr(comfy.ops, "scaled_fp8_ops")
        monkeypatch.delattr(comfy.supported_models_base.BASE, "scaled_fp8")


def _load(monkeypatch, path, weight_dtype="default"):
    monkeypatch.setattr(loading, "resolve", lambda name: str(path))
    return loading.load_model("tiny_fp8_scaled.safetensors", weight_dtype)


def _inputs(cfg, batch=2):
    """Video and audio latents of the same duration for this config, text, timesteps."""
    g = torch.Generator().manual_seed(1)
    frames = 4 * cfg.video_patch[0]
    length = round(frames / cfg.video_latent_fps * cfg.audio_latent_rate)
    video = torch.randn(batch, cfg.video_channels, frames, 4 * cfg.video_patch[1], 4 * cfg.video_patch[2], generator=g)
    audio = torch.randn(batch, cfg.audio_channels, length, generator=g)
    return video, audio, torch.rand(batch, generator=g), torch.randn(batch, 5, cfg.text_dim, generator=g)


def _rel(dm, ref):
    video, audio, t, text = _inputs(ref.config)
    with torch.no_grad():
        got = dm([video, audio], t * 1000.0, context=text)
        want = ref(video, audio, t, t, text)
    return max(float((g.float() - w).norm() / w.norm()) for g, w in zip(got, want))


@pytest.mark.parametrize("version, route", [("0.12", "mixed_precision"), ("0.3", "scaled_fp8"),
                                            ("none", "dequantize")])
def test_route_follows_the_features(monkeypatch, version, route):
    features(monkeypatch, version)
    assert native.scaled_fp8_route() == route


def test_mixed_precision_route_keeps_the_files_fp8_and_scales(monkeypatch, files):
    path, ref = files
    features(monkeypatch, "0.12")
    dm = _load(monkeypatch, path).model.diffusion_model
    q = dm.video_model.blocks[0].self_attn.q
    assert type(q).__qualname__.startswith("mixed_precision_ops")
    assert q.weight.dtype == torch.float8_e4m3fn and q.quant_format == "float8_e4m3fn"
    scale = checkpoint.read_header(path).tensors["video_model.blocks.0.self_attn.q.scale_weight"]
    with open(path, "rb") as f:
        assert torch.equal(q.weight_scale, checkpoint.read_tensor(f, scale))
    assert dm.video_model.head.head.weight_scale is None  # a layer the file does not scale: plain weight
    assert _rel(dm, ref) < 1e-5  # fp8 * scale is exactly the dequantized weight


def test_scaled_fp8_route_keeps_scale_weight(monkeypatch, files):
    path, ref = files
    features(monkeypatch, "0.3")
    patcher = _load(monkeypatch, path)
    dm = patcher.model.diffusion_model
    assert patcher.model.model_config.scaled_fp8 == torch.float8_e4m3fn
    assert patcher.model.model_config.optimizations["fp8"]  # an empty marker: fp8 matmul allowed
    q = dm.video_model.blocks[0].self_attn.q
    assert q.weight.dtype == torch.float8_e4m3fn and q.scale_weight.dtype == torch.float32
    assert q.scale_input is not None and float(q.scale_input) == 1.0
    assert dm.video_model.blocks[0].norm3.weight.dtype == torch.float32  # ComfyUI's unet dtype (stub: CPU)
    head = dm.video_model.head.head  # unscaled in the file: kept wide with scale 1, not rounded to fp8
    assert type(head) is type(q) and head.weight.dtype == torch.float32 and float(head.scale_weight) == 1.0
    assert _rel(dm, ref) < 1e-5


@pytest.mark.parametrize("version, weight_dtype, storage", [("none", "default", torch.bfloat16),
                                                             ("0.12", "fp16", torch.float16),
                                                             ("0.3", "bf16", torch.bfloat16)])
def test_dequantized_where_asked_or_without_fp8_ops(monkeypatch, files, version, weight_dtype, storage):
    path, ref = files
    features(monkeypatch, version)
    dm = _load(monkeypatch, path, weight_dtype).model.diffusion_model
    q = dm.video_model.blocks[0].self_attn.q
    assert q.weight.dtype == storage and not hasattr(q, "scale_weight")
    assert _rel(dm, ref) < 0.02


def test_ovi_layout_through_both_native_routes(monkeypatch, tmp_path):
    from test_ovi_parity import FIX
    path = tmp_path / "model_fp8_scaled.safetensors"
    write_scaled(FIX / "ovi_tiny.safetensors", path, marker_elements=2)
    overrides = {"num_heads": 2, "text_len": 16}
    header = checkpoint.read_header(path)
    cfg = checkpoint.infer_config(header, overrides)
    ref = checkpoint.load_checkpoint(path, dtype="fp32", overrides=overrides)
    spec = pack.ccl_core.latent_spec.model_spec(cfg, header.metadata)
    for version, tol in (("0.12", 1e-5), ("0.3", 1e-5)):
        with monkeypatch.context() as m:
            features(m, version)
            patcher = native.model_from_file(header, cfg, spec, 5.0, torch.float8_e4m3fn)
            if version == "0.3":
                assert not patcher.model.model_config.optimizations["fp8"]  # 2-element marker: no fp8 matmul
            assert _rel(patcher.model.diffusion_model, ref) < tol, version
