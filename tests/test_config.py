import json

import pytest
import torch

from ccl_core import DualStreamModel, ModelConfig, ovi_config, tiny_config


def test_json_round_trip():
    cfg = tiny_config(tarp_window=None, fusion="gated", n_ctx=0)
    again = ModelConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["video_patch"] == [1, 2, 2]


@pytest.mark.parametrize("change, message", [
    (dict(fusion="nope"), "fusion must be one of"),
    (dict(num_heads=3), "divisible by num_heads"),
    (dict(fusion="ovi", n_ctx=4), "no context tokens"),
    (dict(tarp_window=0), "tarp_window"),
    (dict(n_ctx=-1), "n_ctx"),
])
def test_invalid_config_is_explained(change, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**change)


def test_unknown_field_rejected():
    with pytest.raises(ValueError, match="Unknown ModelConfig fields"):
        ModelConfig.from_dict({**tiny_config().to_dict(), "bogus": 1})


def test_ovi_layout_on_meta_device_matches_the_published_size():
    with torch.device("meta"):
        model = DualStreamModel(ovi_config())
    n = sum(p.numel() for p in model.parameters())
    assert n == 11_660_753_108
    sd = model.state_dict()
    assert tuple(sd["video_model.patch_embedding.weight"].shape) == (3072, 48, 1, 2, 2)
    assert tuple(sd["audio_model.patch_embedding.0.weight"].shape) == (3072, 20, 7)
    assert tuple(sd["audio_model.patch_embedding.2.w1.weight"].shape) == (8192, 3072, 7)
    assert tuple(sd["video_model.time_projection.1.weight"].shape) == (18432, 3072)
    assert tuple(sd["video_model.blocks.29.modulation.modulation"].shape) == (1, 6, 3072)
    assert tuple(sd["video_model.head.head.weight"].shape) == (192, 3072)
    assert tuple(sd["audio_model.head.head.weight"].shape) == (20, 3072)
    assert "audio_model.blocks.0.cross_attn.pre_attn_norm_fusion.bias" in sd
    assert not any("ctx_tokens" in k for k in sd)


def test_rope_split_matches_wan():
    assert ovi_config().rope_split == (44, 42, 42)
    assert ovi_config().audio_rope_factor == pytest.approx(0.19676)
    assert tiny_config().audio_rope_factor == pytest.approx(4.0 / 16.0)
    assert tiny_config(aligned_rope=False).audio_rope_factor == 1.0
