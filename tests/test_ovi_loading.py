"""Ovi files as users have them: fp8, the 10 s variant by name, and CCL fine-tuning on top."""

import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ccl_core.checkpoint import CheckpointError, load_checkpoint, read_header
from ccl_core.ovi import ovi_config_from_header
from ccl_train import Trainer, stage_config

from test_ovi_parity import FIX, call, rel

TINY = {"num_heads": 2, "text_len": 16}


@pytest.fixture(scope="module")
def io():
    with safe_open(str(FIX / "ovi_tiny_io.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_fp8_quantised_ovi_file_loads_fp8_and_stays_close(tmp_path, io):
    sd = load_file(FIX / "ovi_tiny.safetensors")
    fp8 = {k: (v.to(torch.float8_e4m3fn) if v.ndim == 2 and ".blocks." in k else v.to(torch.bfloat16))
           for k, v in sd.items()}
    path = tmp_path / "model_fp8_e4m3fn.safetensors"
    save_file(fp8, path)
    model = load_checkpoint(path, overrides=TINY)
    assert model.checkpoint_kind == "ovi"
    assert model.video_model.blocks[0].cross_attn.k_fusion.weight.dtype == torch.float8_e4m3fn
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert weights < 0.7 * sum(v.numel() * 4 for v in sd.values())
    model.compute_dtype = torch.float32
    v, a = call(model, io)
    assert rel(v, io["out.full.video"]) < 0.1 and rel(a, io["out.full.audio"]) < 0.1  # fp8 rounding


def test_variant_is_read_from_the_file_name(tmp_path):
    path = tmp_path / "model_960x960_10s.safetensors"
    shutil.copy(FIX / "ovi_tiny.safetensors", path)
    cfg = ovi_config_from_header(read_header(path), TINY)
    assert cfg.name == "ovi-960x960-10s"
    assert cfg.audio_rope_scale == pytest.approx(0.19676)
    assert (cfg.video_latent_fps, cfg.audio_latent_rate) == (6.0, 31.25)
    assert ovi_config_from_header(read_header(FIX / "ovi_tiny.safetensors"), TINY).name == "ovi-5s"


def test_unequal_tower_depths_are_refused(tmp_path):
    sd = load_file(FIX / "ovi_tiny.safetensors")
    sd = {k: v for k, v in sd.items() if not k.startswith("audio_model.blocks.3.")}
    path = tmp_path / "broken.safetensors"
    save_file(sd, path)
    with pytest.raises(CheckpointError, match="video tower has 4 blocks but audio tower 3"):
        load_checkpoint(path, overrides=TINY)


def test_ccl_parameters_fine_tune_on_ovi_weights(io):
    model = load_checkpoint(FIX / "ovi_tiny.safetensors", overrides={**TINY, "n_ctx": 4, "ctx_logit_init": -10.0})
    model.train()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "blocks.0.self_attn.q" in k}
    ctx0 = model.audio_model.blocks[1].cross_attn.ctx_tokens.detach().clone()
    trainer = Trainer(model, stage_config("fusion", steps=3, warmup_steps=0, lr_fusion=1e-2), device="cpu")
    batch = {"video": io["in.video"], "audio": io["in.audio"], "text": io["in.vid_context"],
             "null_text": torch.zeros(1, 1, io["in.vid_context"].shape[2])}
    for _ in range(3):
        trainer.step(batch)
    assert not torch.equal(model.audio_model.blocks[1].cross_attn.ctx_tokens.detach(), ctx0)
    for k, v in frozen.items():
        assert torch.equal(model.state_dict()[k], v)  # the towers stay as Ovi trained them
