"""ccl_core.latent_spec: the checkpoint metadata that says what a model's latents mean, and stamping it
onto a file; media.fit_length / source_frames and routing's task numbers the nodes build on."""

import json

import pytest
import torch
from safetensors import safe_open

from ccl_core import DualStreamModel, tiny_config
from ccl_core.checkpoint import infer_config, load_checkpoint, read_header, save_checkpoint
from ccl_core.config import ovi_config
from ccl_core.header import CheckpointError
from ccl_core.latent_spec import (DEFAULT_SHIFT, SPACES_METADATA_KEY, LatentSpec, model_shift, model_spec,
                                  spec_metadata, stamp_file)
from ccl_core.media import fit_length, source_frames
from ccl_core.routing import TASKS, task_index, task_names



def test_metadata_round_trip_and_defaults():
    cfg = tiny_config()
    plain = model_spec(cfg)
    assert (plain.video_space, plain.temporal_factor, plain.null_text) == ("identity", 1, "zeros")
    assert model_shift({}) == DEFAULT_SHIFT == 5.0 and model_shift({"ccl_shift": "x"}) == DEFAULT_SHIFT
    spec = LatentSpec.from_dict({**plain.to_dict(), "temporal_factor": 2, "spatial_factor": 8, "native_width": 64,
                                 "native_height": 64, "native_seconds": 2.0, "null_text": [[0.25, -1.5]]})
    meta = spec_metadata(spec, 3.0)
    assert model_spec(cfg, meta) == spec and model_shift(meta) == 3.0
    ovi = model_spec(ovi_config(num_layers=1, dim=256, ffn_dim=512, num_heads=2))
    assert (ovi.video_space, ovi.temporal_factor, ovi.causal, ovi.native_width) == ("wan22", 4, True, 720)
    with pytest.raises(CheckpointError, match=SPACES_METADATA_KEY):
        model_spec(cfg, {SPACES_METADATA_KEY: "[1"})
    with pytest.raises(CheckpointError, match=r"does not say its latent spaces.*python -m ccl_core stamp FILE"):
        model_spec(tiny_config(name="toyav-ccl"))


def test_stamp_keeps_every_tensor_byte_for_byte(tmp_path):
    torch.manual_seed(0)
    net = DualStreamModel(tiny_config())
    path = tmp_path / "m.safetensors"
    save_checkpoint(net, path, metadata={"recipe": "r"})
    before = path.read_bytes()
    out = stamp_file(path, {"ccl_shift": "3.0", "recipe": "r2"}, out=tmp_path / "s.safetensors")
    assert path.read_bytes() == before  # with out=, the original is left as it was
    header = read_header(out)
    assert header.metadata["ccl_shift"] == "3.0" and header.metadata["recipe"] == "r2"
    assert infer_config(header) == net.config
    with safe_open(str(path), "pt") as a, safe_open(str(out), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    load_checkpoint(out)  # a valid checkpoint still
    n = int.from_bytes(before[:8], "little")
    assert path.read_bytes()[8 + n:] == open(out, "rb").read()[8 + int.from_bytes(open(out, "rb").read(8), "little"):]
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        (tmp_path / "bad").write_bytes(b"12345678" + json.dumps({}).encode())
        stamp_file(tmp_path / "bad", {})


def test_fit_length_pads_with_zeros_or_repeats():
    x = torch.arange(6.0).view(1, 2, 3)
    assert torch.equal(fit_length(x, 2), x[..., :2])
    assert torch.equal(fit_length(x, 5), torch.tensor([[[0, 1, 2, 0, 0], [3, 4, 5, 0, 0.]]]))
    assert torch.equal(fit_length(x, 4, pad="repeat", dim=1)[0, 2:], x[0, 1:].expand(2, 3))
    with pytest.raises(ValueError, match="empty"):
        fit_length(x[..., :0], 2, pad="repeat")
    with pytest.raises(ValueError, match="unknown pad"):
        fit_length(x, 5, pad="edge")


def test_source_frames_converts_frame_rates():
    times = torch.arange(6, dtype=torch.float64) / 24  # 6 frames at 24 fps -> 16 fps: the frame shown then
    assert source_frames(times, 5, 16.0).tolist() == [0, 1, 3, 4, 5]
    assert source_frames(torch.arange(3, dtype=torch.float64) / 8, 6, 16.0).tolist() == [0, 0, 1, 1, 2, 2]


def test_task_numbers_follow_the_table():
    assert task_names([task_index(n) for n in TASKS]) == list(TASKS)
    with pytest.raises(ValueError, match="Unknown task"):
        task_index("x2y")


def test_stamp_command(tmp_path, capsys):
    """`python -m ccl_core stamp FILE` adds a ToyAV model's facts; a model that is not ToyAV is refused."""
    from ccl_core.__main__ import main
    from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
    from ccl_core.toyav.embedded import SHIFT, toyav_config
    torch.manual_seed(0)
    path = tmp_path / "toyav.safetensors"
    save_checkpoint(DualStreamModel(toyav_config(load_video_ae(), load_audio_ae())), path)
    assert main(["stamp", str(path), "--out", str(tmp_path / "s.safetensors")]) == 0
    meta = read_header(tmp_path / "s.safetensors").metadata
    spec = model_spec(infer_config(read_header(path)), meta)
    assert (spec.temporal_factor, spec.spatial_factor, spec.audio_sample_rate, spec.native_seconds) == (2, 8, 16000, 2.0)
    assert model_shift(meta) == SHIFT and len(spec.null_text) == 5
    save_checkpoint(DualStreamModel(tiny_config()), tmp_path / "tiny.safetensors")
    assert main(["stamp", str(tmp_path / "tiny.safetensors")]) == 2
    assert "it is not a ToyAV model" in capsys.readouterr().err
