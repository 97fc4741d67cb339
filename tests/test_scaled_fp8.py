"""Scaled-fp8 files (ComfyUI's per-layer scale_weight format) outside ComfyUI: dequantized on load.

The native routes inside ComfyUI (scaled_fp8_ops on 0.3.x, mixed_precision_ops on 0.12+) are
tested against tests/comfy_stub in test_comfy_native.py and against a real ComfyUI in
tests/comfy_native_check.py.
"""

import pytest
import torch
from safetensors.torch import load_file, save_file

from ccl_core.checkpoint import (CheckpointError, load_checkpoint, read_header, save_checkpoint,
                                 scaled_fp8_info)
from conftest import tiny_inputs
from scaled_fp8 import dequantized, write_scaled


@pytest.fixture
def files(tmp_path, tiny):
    plain = tmp_path / "tiny.safetensors"
    save_checkpoint(tiny, plain)
    scaled = tmp_path / "tiny_fp8_scaled.safetensors"
    return tiny, plain, scaled, write_scaled(plain, scaled)


def rel(a, b):
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


def test_loads_dequantized_as_the_scales_say(files):
    tiny, plain, path, scaled = files
    info = scaled_fp8_info(read_header(path))
    assert info.base_dtype == torch.bfloat16 and info.fp8_matmul and len(info.scales) > 0
    model = load_checkpoint(path, dtype="fp32")
    got = model.state_dict()
    by_hand = dequantized(scaled)
    assert got.keys() == by_hand.keys()
    for name, want in by_hand.items():  # exactly fp8 * scale, nothing else
        assert torch.equal(got[name], want), name
    ref = tiny.state_dict()
    for name in info.scales:  # within fp8 rounding of the float weights: 2^-4 relative, 2^-9 * scale near 0
        w, scale = ref[name], scaled[name[:-len("weight")] + "scale_weight"]
        assert bool(((got[name] - w).abs() <= w.abs() * 2**-4 + scale * 2**-9 + 1e-12).all()), name
    video, audio, t, text = tiny_inputs()
    for a, b in zip(tiny(video, audio, t, None, text), model(video, audio, t, None, text)):
        assert rel(b, a) < 0.05


def test_default_dtype_is_the_files_unscaled_dtype(files):
    _, _, path, _ = files
    model = load_checkpoint(path)
    assert model.video_model.blocks[0].self_attn.q.weight.dtype == torch.bfloat16
    assert model.dtype_for_compute == torch.bfloat16
    assert load_checkpoint(path, dtype="fp16").video_model.blocks[1].ffn[0].weight.dtype == torch.float16


def test_fp8_storage_of_a_scaled_file_is_refused_naming_the_fix(files):
    _, _, path, _ = files
    with pytest.raises(CheckpointError, match="scaled-fp8 file.*dtype default or bf16"):
        load_checkpoint(path, dtype="fp8")


def test_ovi_layout_scaled_file_loads(tmp_path):
    from test_ovi_loading import TINY
    from test_ovi_parity import FIX
    path = tmp_path / "ovi_fp8_scaled.safetensors"
    scaled = write_scaled(FIX / "ovi_tiny.safetensors", path, marker_elements=2)
    assert not scaled_fp8_info(read_header(path)).fp8_matmul
    model = load_checkpoint(path, dtype="fp32", overrides=TINY)
    assert model.checkpoint_kind == "ovi"
    got = model.state_dict()
    for name, want in dequantized(scaled).items():
        assert torch.equal(got[name], want), name
    ref = load_file(FIX / "ovi_tiny.safetensors")
    key = "audio_model.blocks.0.cross_attn.k_fusion.weight"
    assert 0 < rel(got[key], ref[key]) < 0.05


def _edit(path, out, change):
    state = load_file(path)
    change(state)
    save_file(state, out, metadata=read_header(path).metadata)
    return out


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("video_model.blocks.0.self_attn.q.weight"), "has no weight"),
    (lambda s: s.__setitem__("video_model.blocks.0.self_attn.q.scale_weight", torch.ones(4)),
     "expected one float per layer"),
    (lambda s: s.__setitem__("video_model.blocks.0.self_attn.q.weight",
                             s["video_model.blocks.0.self_attn.q.weight"].to(torch.bfloat16)),
     "must be float8_e4m3fn"),
    (lambda s: s.__setitem__("video_model.blocks.0.self_attn.q.weight",
                             s["video_model.blocks.0.self_attn.q.weight"].float().to(torch.float8_e5m2)),
     "stored as float8_e5m2"),
    (lambda s: s.__setitem__("scaled_fp8", torch.zeros(0, dtype=torch.float8_e5m2)), "float8_e5m2 weights"),
])
def test_bad_scaled_files_are_named(files, tmp_path, change, message):
    _, _, path, _ = files
    bad = _edit(path, tmp_path / "bad.safetensors", change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(bad)
