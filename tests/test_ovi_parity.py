"""Numerical parity with Ovi's own FusionModel.forward.

The fixture (tests/fixtures/ovi_tiny*.safetensors) holds random weights with Ovi's exact key names
at a reduced size and the outputs of Ovi's code on them, run on CPU in float32 by
tools/ovi_reference.py (see tools/README_ovi_reference.md for how it was produced).
"""

import json
import pathlib

import pytest
import torch
from safetensors import safe_open

from ccl_core.checkpoint import detect_kind, load_checkpoint, read_header
from ccl_core.guidance import Guidance, guided_velocity

FIX = pathlib.Path(__file__).parent / "fixtures"
TOL = 1e-4  # relative error, float32


@pytest.fixture(scope="module")
def ovi():
    model = load_checkpoint(FIX / "ovi_tiny.safetensors", overrides={"num_heads": 2, "text_len": 16})
    with safe_open(str(FIX / "ovi_tiny_io.safetensors"), "pt") as f:
        io = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["ovi_reference"])
    return model, io, meta


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def call(model, io, **kw):
    with torch.no_grad():
        return model(io["in.video"], io["in.audio"], io["in.t"] / 1000.0, None, io["in.vid_context"],
                     text_audio=io["in.audio_context"], **kw)


def test_fixture_is_recognised_as_ovi(ovi):
    model, _, meta = ovi
    header = read_header(FIX / "ovi_tiny.safetensors")
    assert detect_kind(header)[0] == "ovi"
    cfg = model.config
    v = meta["video_config"]
    assert (cfg.dim, cfg.ffn_dim, cfg.num_layers, cfg.freq_dim, cfg.text_dim) == \
        (v["dim"], v["ffn_dim"], v["num_layers"], v["freq_dim"], v["text_dim"])
    assert cfg.audio_rope_factor == pytest.approx(meta["audio_config"]["temporal_rope_scaling_factor"])
    assert cfg.fusion == "ovi" and cfg.n_ctx == 0


def test_full_forward_matches_ovi(ovi):
    model, io, _ = ovi
    v, a = call(model, io)
    assert rel(v, io["out.full.video"]) < TOL
    assert rel(a, io["out.full.audio"]) < TOL


def test_skip_layer_negative_pass_matches_ovi(ovi):
    model, io, meta = ovi
    v, a = call(model, io, skip_block=meta["slg_layer"])
    assert rel(v, io["out.slg2.video"]) < TOL
    assert rel(a, io["out.slg2.audio"]) < TOL


def test_single_stream_forwards_match_ovi(ovi):
    model, io, _ = ovi
    with torch.no_grad():
        v, _ = model(io["in.video"], None, io["in.t"] / 1000.0, None, io["in.vid_context"], tasks="t2v")
        _, a = model(None, io["in.audio"], io["in.t"] / 1000.0, None, io["in.audio_context"], tasks="t2a")
    assert rel(v, io["out.video_only.video"]) < TOL
    assert rel(a, io["out.audio_only.audio"]) < TOL


def test_ccl_on_top_of_ovi_starts_as_ovi(ovi):
    """Context tokens added with a low logit offset leave Ovi's output unchanged (within 1e-3)."""
    _, io, _ = ovi
    ccl = load_checkpoint(FIX / "ovi_tiny.safetensors",
                          overrides={"num_heads": 2, "text_len": 16, "n_ctx": 8, "ctx_logit_init": -10.0})
    assert ccl.config.fusion == "ccl"
    assert ccl.video_model.blocks[0].cross_attn.ctx_tokens.shape == (8, 32)
    v, a = call(ccl, io)
    assert rel(v, io["out.full.video"]) < 1e-3
    assert rel(a, io["out.full.audio"]) < 1e-3
    # and the new parameters are trainable: gradients reach them
    ccl.train()
    v, a = ccl(io["in.video"], io["in.audio"], io["in.t"] / 1000.0, None, io["in.vid_context"],
               text_audio=io["in.audio_context"])
    (v.square().mean() + a.square().mean()).backward()
    g = ccl.video_model.blocks[0].cross_attn.ctx_tokens.grad
    assert g is not None and g.abs().sum() > 0


def test_modality_guidance_on_ovi_weights(ovi):
    """UCG with no context tokens: the ctx-only branch is Ovi without cross-modal attention."""
    model, io, _ = ovi
    v_ctx, a_ctx = call(model, io, ctx_only=True)
    assert rel(v_ctx, io["out.video_only.video"]) < TOL
    assert rel(a_ctx, io["out.audio_only.audio"]) < TOL


def test_i2av_forward_matches_ovi_first_frame_is_clean(ovi):
    """i2av (Ovi's i2v): latent frame 0 is the image latent, its tokens at timestep 0, as Ovi's
    first_frame_is_clean=True; in.video[:, :, :1] stands for the image latent Ovi's engine writes there."""
    model, io, _ = ovi
    v, a = call(model, io, tasks="i2av")
    assert rel(v, io["out.first_frame_clean.video"]) < TOL
    assert rel(a, io["out.first_frame_clean.audio"]) < TOL
    # the check can fail: the clean frame changes both streams (audio through fusion)
    assert rel(io["out.first_frame_clean.video"], io["out.full.video"]) > 100 * TOL
    assert rel(io["out.first_frame_clean.audio"], io["out.full.audio"]) > 100 * TOL


@pytest.mark.parametrize("task,pos,guided", [("t2av", "full", "guided"), ("i2av", "first_frame_clean", "i2av_guided")])
def test_two_negatives_guidance_matches_ovi_engine(ovi, task, pos, guided):
    """Ovi's engine guides each tower with its own negative prompt (video negative for the video
    tower, audio negative for the audio tower) in one skip-layer pass; the stored result is Ovi's
    own guidance lines run on Ovi's outputs (tools/ovi_reference.py)."""
    model, io, meta = ovi
    g = meta["guidance"]
    guidance = Guidance("ovi", video_scale=g["scales"]["video_guidance_scale"],
                        audio_scale=g["scales"]["audio_guidance_scale"], skip_block=g["slg_layer"])
    t = io["in.t"] / 1000.0
    v, a = guided_velocity(model, io["in.video"], io["in.audio"], t, t, io["in.vid_context"], io["in.vid_negative"],
                           guidance, tasks=task, text_audio=io["in.audio_context"],
                           uncond_text_audio=io["in.audio_negative"])
    assert rel(v, io[f"out.{guided}.video"]) < 1e-5
    assert rel(a, io[f"out.{guided}.audio"]) < 1e-5
    # the check can fail: one negative for both towers (the video one) gives other audio
    _, a_one = guided_velocity(model, io["in.video"], io["in.audio"], t, t, io["in.vid_context"],
                               io["in.vid_negative"], guidance, tasks=task, text_audio=io["in.audio_context"])
    assert rel(a_one, io[f"out.{guided}.audio"]) > 1e-3
    assert rel(io[f"out.{guided}.video"], io[f"out.{pos}.video"]) > 1e-3
