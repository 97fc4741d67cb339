"""Self-attention windowed in time (self_windows.py): the plan, the attention against a masked
reference, the model on clips within and beyond its window, and the embedded model's window."""

import pytest
import torch
import torch.nn.functional as F

from ccl_core import DualStreamModel, tiny_config
from ccl_core.attention import SelfAttention
from ccl_core.rope import Rotary, video_angles
from ccl_core.self_windows import TimeWindows
from conftest import randomize


def reference_mask(pos: torch.Tensor, width: float, step: float) -> torch.Tensor:
    """[L, L] bool, written out per query: key j is read by query i iff it lies in the `width` latent
    frames starting at floor(t_i - width / 2), kept inside the clip."""
    pos = pos.double()
    start, end = float(pos[0]), float(pos[-1]) + step
    mask = torch.zeros(len(pos), len(pos), dtype=torch.bool)
    for i, t in enumerate(pos.tolist()):
        lo = min(max(float(torch.floor(torch.tensor(t - width / 2 + 1e-6))), start), end - width)
        mask[i] = (pos >= lo - 1e-6) & (pos < lo + width - 1e-6)
    return mask


def video_pos(frames: int, tokens_per_frame: int) -> torch.Tensor:
    return torch.arange(frames, dtype=torch.float64).repeat_interleave(tokens_per_frame)


def test_a_clip_within_the_window_attends_in_full():
    assert TimeWindows.plan(video_pos(8, 4), 8, 1.0) is None
    assert TimeWindows.plan(video_pos(8, 4), None, 1.0) is None
    assert TimeWindows.plan(torch.arange(125, dtype=torch.float64) * 0.128, 16, 0.128) is None  # 2 s of audio


@pytest.mark.parametrize("pos, width, step", [
    (video_pos(20, 3), 8, 1.0),  # a video tower, 20 latent frames, window 8
    (video_pos(9, 2), 8, 1.0),  # one frame longer than the window
    (torch.arange(500, dtype=torch.float64) * 0.128, 16, 0.128),  # ToyAV audio at 8 s
    (torch.arange(0, 30, 2, dtype=torch.float64).repeat_interleave(2), 6, 2.0),  # temporal patches of 2
])
def test_the_plan_is_the_per_query_window(pos, width, step):
    windows = TimeWindows.plan(pos, width, step)
    mask = torch.zeros(len(pos), len(pos), dtype=torch.bool)
    covered = []
    for a, b, c, d in windows.ranges:
        mask[a:b, c:d] = True
        covered += list(range(a, b))
    assert covered == list(range(len(pos)))  # every query once, in order
    assert torch.equal(mask, reference_mask(pos, width, step))
    keys = mask.sum(1).double() * step / (len(pos) / len(torch.unique(pos)))
    assert torch.allclose(keys, torch.full_like(keys, float(width)))  # every query reads `width` frames of keys


def test_windowed_attention_equals_the_masked_reference():
    torch.manual_seed(0)
    attn = randomize(SelfAttention(32, 2, True, 1e-6))
    frames, hw = 12, 4
    x = torch.randn(2, frames * hw, 32)
    rope = Rotary(video_angles((frames, 2, 2), (6, 4, 6)))
    pos = video_pos(frames, hw)
    windows = TimeWindows.plan(pos, 5, 1.0)
    got = attn(x, rope, windows)

    def masked(q, k, v, scale=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=reference_mask(pos, 5, 1.0))

    attn.attention = masked
    assert torch.allclose(got, attn(x, rope), atol=1e-5)
    attn.attention = F.scaled_dot_product_attention
    assert not torch.allclose(got, attn(x, rope), atol=1e-3)  # the window changes the answer


def test_the_model_windows_only_clips_longer_than_its_window():
    """Within the window the model is the one without a window, exactly; beyond it, every attention
    call of self-attention reads at most the window's keys, through the injected attention function."""
    cfg = tiny_config(self_attn_window=8)  # 8 latent frames = 2 s at 4 fps
    torch.manual_seed(0)
    windowed = randomize(DualStreamModel(cfg))
    full = randomize(DualStreamModel(tiny_config()))
    g = torch.Generator().manual_seed(1)
    text = torch.randn(1, 5, cfg.text_dim, generator=g)
    t = torch.tensor([0.7])
    for frames, latents in ((8, 32), (20, 80)):
        video = torch.randn(1, cfg.video_channels, frames, 8, 8, generator=g)
        audio = torch.randn(1, cfg.audio_channels, latents, generator=g)
        a, b = windowed(video, audio, t, t, text), full(video, audio, t, t, text)
        same = all(torch.equal(x, y) for x, y in zip(a, b))
        assert same == (frames <= 8)

    seen = []

    def spy(q, k, v, scale=None):
        seen.append(k.shape[2])
        return F.scaled_dot_product_attention(q, k, v)

    spy_model = DualStreamModel(cfg, attention=spy)
    spy_model.load_state_dict(windowed.state_dict())
    spy_model(video, audio, t, t, text)
    video_keys, audio_keys = 8 * (8 // 2) * (8 // 2), round(8 / cfg.audio_time_scale)
    assert max(seen) == max(video_keys, audio_keys) and video_keys in seen and audio_keys in seen


def test_the_window_must_be_positive():
    with pytest.raises(ValueError, match="self_attn_window must be None or >= 1"):
        tiny_config(self_attn_window=0)


def test_the_embedded_model_is_windowed_to_its_training_clip():
    from ccl_core.assets import ASSETS, MODEL_FILE
    from ccl_core.checkpoint import infer_config, read_header
    from ccl_core.toyav.clip import DURATION_S
    from ccl_core.toyav.embedded import toyav_config

    cfg = toyav_config()
    assert cfg.self_attn_window == DURATION_S * cfg.video_latent_fps == 16
    shipped = infer_config(read_header(ASSETS / MODEL_FILE))
    assert shipped.self_attn_window == cfg.self_attn_window


def test_stamp_gives_an_older_toyav_file_the_window(tmp_path):
    """`python -m ccl_core stamp` (how the shipped file got its window) adds the embedded model's window
    to a ToyAV config written without one, tensors unchanged, and keeps a window a file already has."""
    from safetensors.torch import load_file

    from ccl_core.__main__ import main
    from ccl_core.checkpoint import infer_config, read_header, save_checkpoint
    from ccl_core.toyav.embedded import toyav_config

    torch.manual_seed(0)
    for window, want in ((None, toyav_config().self_attn_window), (24, 24)):
        path, out = tmp_path / f"w{window}.safetensors", tmp_path / f"w{window}-stamped.safetensors"
        save_checkpoint(DualStreamModel(toyav_config(self_attn_window=window)), path)
        assert main(["stamp", str(path), "--out", str(out)]) == 0
        assert infer_config(read_header(out)).self_attn_window == want
        before, after = load_file(str(path)), load_file(str(out))
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_a_pipeline_can_run_the_shipped_weights_with_another_window():
    """load_pipeline's overrides (bench_toyav_long.py --self-attn-window): 0 / None is full attention."""
    from ccl_core.toyav.embedded import load_pipeline

    assert load_pipeline().model.config.self_attn_window == 16
    assert load_pipeline(overrides={"self_attn_window": None}).model.config.self_attn_window is None
    assert load_pipeline(overrides={"self_attn_window": 24}).model.video_model.cfg.self_attn_window == 24
