"""Save / load with the config in the file, dtypes, and one clear error for every bad file."""

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from ccl_core import DualStreamModel, tiny_config
from ccl_core.checkpoint import CheckpointError, detect_kind, load_checkpoint, read_header, save_checkpoint
from conftest import randomize, tiny_inputs


@pytest.fixture
def saved(tmp_path, tiny):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(tiny, path, metadata={"note": "test"})
    return path, tiny


def test_round_trip_is_exact_and_carries_the_config(saved):
    path, model = saved
    header = read_header(path)
    assert json.loads(header.metadata["ccl_config"]) == model.config.to_dict()
    assert header.metadata["note"] == "test"
    loaded = load_checkpoint(path)
    assert loaded.config == model.config
    video, audio, t, text = tiny_inputs()
    for a, b in zip(model(video, audio, t, None, text), loaded(video, audio, t, None, text)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype, storage, tol", [("bf16", torch.bfloat16, 0.03), ("fp16", torch.float16, 0.01),
                                                 ("fp8", torch.float8_e4m3fn, 0.08), ("fp32", torch.float32, 0)])
def test_dtypes(saved, dtype, storage, tol):
    path, model = saved
    loaded = load_checkpoint(path, dtype=dtype)
    w = loaded.video_model.blocks[0].self_attn.q.weight
    assert w.dtype == storage
    if dtype == "fp8":
        assert loaded.video_model.blocks[0].norm3.weight.dtype == torch.float32  # small tensors stay wide
        loaded.compute_dtype = torch.float32  # fp8 storage, float32 compute
    video, audio, t, text = tiny_inputs()
    ref = model(video, audio, t, None, text)
    out = loaded(video, audio, t, None, text)
    for a, b in zip(ref, out):
        assert ((a - b.float()).norm() / a.norm()).item() <= tol + 1e-7


def test_fp8_file_loads_and_stays_fp8(tmp_path, tiny):
    path = tmp_path / "fp8.safetensors"
    save_checkpoint(tiny, path, dtype=torch.float8_e4m3fn)
    loaded = load_checkpoint(path)
    assert loaded.video_model.blocks[1].ffn[0].weight.dtype == torch.float8_e4m3fn
    assert loaded.dtype_for_compute == torch.bfloat16
    video, audio, t, text = tiny_inputs()
    v, a = loaded(video, audio, t, None, text)
    assert v.dtype == torch.bfloat16 and torch.isfinite(v).all()


def test_no_second_copy_is_made(saved, monkeypatch):
    """Each parameter is the very buffer its tensor was read into (assigned), not a copy of it: the
    read buffers are kept alive here, so a copy can never land at a read buffer's address."""
    import ccl_core.checkpoint as ckpt
    path, _ = saved
    read = {}  # byte offset in the file -> the tensor read from there (kept alive)
    real = ckpt.read_tensor

    def recording(f, info, device="cpu"):
        t = real(f, info, device)
        read[info.start] = t
        return t

    monkeypatch.setattr(ckpt, "read_tensor", recording)
    loaded = load_checkpoint(path)
    tensors = read_header(path).tensors
    params = dict(loaded.named_parameters())
    assert params and set(params) == set(tensors) and len(read) == len(tensors)
    for name, p in params.items():
        t = read[tensors[name].start]
        assert p.data_ptr() == t.data_ptr() and p.untyped_storage().data_ptr() == t.untyped_storage().data_ptr(), \
            f"{name} is a copy of the tensor read from the file"


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path, tiny):
    sd = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    sd.pop("video_model.blocks.0.self_attn.q.weight")
    sd["video_model.extra.weight"] = torch.zeros(2)
    sd["audio_model.blocks.1.ffn.0.weight"] = torch.zeros(5, 5)
    path = tmp_path / "bad.safetensors"
    save_file(sd, path, metadata={"ccl_format": "1", "ccl_config": tiny.config.to_json()})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "looks like a CCL dual-stream checkpoint" in msg
    assert "missing keys (1): video_model.blocks.0.self_attn.q.weight" in msg
    assert "unexpected keys (1): video_model.extra.weight" in msg
    assert "shape mismatches (1): audio_model.blocks.1.ffn.0.weight: file [5, 5] vs model [64, 32]" in msg


def test_long_lists_are_cut_with_counts(tmp_path, tiny):
    sd = {k: v.contiguous() for k, v in tiny.state_dict().items() if ".blocks.1." not in k}
    path = tmp_path / "short.safetensors"
    save_file(sd, path, metadata={"ccl_format": "1", "ccl_config": tiny.config.to_json()})
    with pytest.raises(CheckpointError, match=r"missing keys \(\d+\): .* \.\.\. and \d+ more"):
        load_checkpoint(path)


def test_truncated_file(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is truncated"):
        load_checkpoint(cut)


@pytest.mark.parametrize("content, message", [
    (b"", "only 0 bytes"),
    (b"PK\x03\x04 this is a zip file, not safetensors" * 3, "not a valid safetensors file"),
    (struct.pack("<Q", 10) + b"{not json!", "not valid JSON"),
])
def test_corrupt_files(tmp_path, content, message):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="Checkpoint not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keys, kind", [
    ({"blocks.0.self_attn.q.weight": [4, 4]}, "wan"),
    ({"double_blocks.0.img_attn.qkv.weight": [4, 4]}, "flux"),
    ({"model.diffusion_model.input_blocks.0.0.weight": [4, 4]}, "sd-unet"),
    ({"video_model.blocks.0.self_attn.q.weight": [4, 4]}, "video-only"),
])
def test_foreign_models_are_named(tmp_path, keys, kind):
    path = tmp_path / "foreign.safetensors"
    save_file({k: torch.zeros(s) for k, s in keys.items()}, path)
    assert detect_kind(read_header(path))[0] == kind
    with pytest.raises(CheckpointError, match="expected a CCL or Ovi audio-video checkpoint"):
        load_checkpoint(path)


def test_wrong_fp8_variant(tmp_path, tiny):
    path = tmp_path / "e5m2.safetensors"
    save_checkpoint(tiny, path, dtype=torch.float8_e5m2)
    with pytest.raises(CheckpointError, match="float8_e5m2.*float8_e4m3fn"):
        load_checkpoint(path)


def test_unknown_dtype_name(saved):
    with pytest.raises(CheckpointError, match="Unknown weight dtype 'int4'"):
        load_checkpoint(saved[0], dtype="int4")


def test_new_ccl_parameters_are_initialised_when_switched_on(tmp_path):
    plain = randomize(DualStreamModel(tiny_config(fusion="ovi", n_ctx=0, tarp_window=None)))
    path = tmp_path / "plain.safetensors"
    save_checkpoint(plain, path)
    upgraded = load_checkpoint(path, overrides=dict(fusion="ccl", n_ctx=4, ctx_logit_init=-12.0))
    cross = upgraded.video_model.blocks[0].cross_attn
    assert cross.ctx_tokens.shape == (4, 32) and cross.ctx_logit_bias.item() == -12.0
    video, audio, t, text = tiny_inputs()
    for a, b in zip(plain(video, audio, t, None, text), upgraded(video, audio, t, None, text)):
        assert ((a - b).norm() / a.norm()).item() < 1e-3
