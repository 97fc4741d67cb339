"""The dual-stream model: shapes, routing, masks, bad input."""

import copy

import pytest
import torch

from ccl_core import DualStreamModel, tiny_config
from ccl_core.routing import TASKS, make_routes, sample_tasks
from conftest import randomize, tiny_inputs
from tarp_reference import dense_tarp


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_gives_both_shapes(tiny, task):
    video, audio, t, text = tiny_inputs()
    span = dict(video_prefix=1, audio_prefix=2) if TASKS[task].prefix == "span" else {}
    v, a = tiny(video, audio, t, None, text, tasks=task, **span)
    assert v.shape == video.shape and a.shape == audio.shape
    spec = TASKS[task]
    assert (v.abs().sum() == 0) == (spec.video == "absent")
    assert (a.abs().sum() == 0) == (spec.audio == "absent")


def test_absent_stream_is_not_computed(tiny):
    video, audio, t, text = tiny_inputs()
    calls = []
    hook = tiny.audio_model.patch_embedding.register_forward_hook(lambda *a: calls.append(1))
    v, a = tiny(video, None, t, None, text, tasks="t2v")
    hook.remove()
    assert a is None and v.shape == video.shape and not calls
    v, a = tiny(None, audio, t, None, text, tasks="t2a")
    assert v is None and a.shape == audio.shape


@pytest.mark.parametrize("tasks, ctx", [
    (["t2av", "t2v", "t2a", "a2v", "v2a"], [False, False, False, True, False]),
    (["t2av", "t2a"], [False, False]),
    (["t2v", "t2av", "t2a", "t2av"], [False, False, False, True]),
    (["t2a", "t2v", "v2a", "t2a", "a2v"], [False, True, False, False, False]),
])
def test_mixed_batch_equals_per_sample_runs(tiny, tasks, ctx):
    """Routing is a mask inside one batch: each row matches the same sample run alone."""
    video, audio, t, text = tiny_inputs(batch=len(tasks))
    ctx_only = torch.tensor(ctx)
    v, a = tiny(video, audio, t, None, text, tasks=tasks, ctx_only=ctx_only)
    for i, task in enumerate(tasks):
        vi, ai = tiny(video[i:i + 1], audio[i:i + 1], t[i:i + 1], None, text[i:i + 1], tasks=task,
                      ctx_only=ctx_only[i:i + 1])
        torch.testing.assert_close(v[i:i + 1], vi, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a[i:i + 1], ai, atol=1e-5, rtol=1e-5)


def test_clean_stream_runs_at_timestep_zero(tiny):
    video, audio, t, text = tiny_inputs()
    v1, _ = tiny(video, audio, t, torch.tensor([0.3, 0.9]), text, tasks="a2v")
    v2, _ = tiny(video, audio, t, torch.tensor([0.0, 0.0]), text, tasks="a2v")
    torch.testing.assert_close(v1, v2)
    v3, _ = tiny(video, audio, t, torch.tensor([0.3, 0.9]), text, tasks="t2av")
    assert not torch.allclose(v1, v3)


def test_ctx_only_route_ignores_the_other_stream(tiny):
    video, audio, t, text = tiny_inputs()
    other_audio = torch.randn_like(audio)
    v1, _ = tiny(video, audio, t, None, text, ctx_only=True)
    v2, _ = tiny(video, other_audio, t, None, text, ctx_only=True)
    torch.testing.assert_close(v1, v2)
    v3, _ = tiny(video, audio, t, None, text)
    v4, _ = tiny(video, other_audio, t, None, text)
    assert (v3 - v4).abs().max() > 1e-4


def test_ctx_only_without_context_tokens_means_no_cross_modal_attention():
    cfg = tiny_config(n_ctx=0, fusion="ovi", tarp_window=None)
    model = randomize(DualStreamModel(cfg))
    video, audio, t, text = tiny_inputs()
    v1, a1 = model(video, audio, t, None, text, ctx_only=True)
    v2, _ = model(video, None, t, None, text, tasks="t2v")
    _, a2 = model(None, audio, t, None, text, tasks="t2a")
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(a1, a2)


def test_gradients_reach_context_tokens_only_through_routes_that_use_them(tiny):
    video, audio, t, text = tiny_inputs()
    v, _ = tiny(video, None, t, None, text, tasks="t2v")
    v.square().mean().backward()
    vb, ab = tiny.video_model.blocks[0].cross_attn, tiny.audio_model.blocks[0].cross_attn
    assert vb.ctx_tokens.grad is not None and vb.ctx_tokens.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.audio_model.parameters())
    tiny.zero_grad(set_to_none=True)
    # full route, loss on video only: the audio tower is read, so its parameters learn from video's loss
    v, a = tiny(video, audio, t, None, text, tasks="a2v")
    v.square().mean().backward()
    assert ab.ctx_tokens.grad is not None and ab.ctx_tokens.grad.abs().sum() > 0
    assert vb.ctx_tokens.grad.abs().sum() > 0
    tiny.zero_grad(set_to_none=True)
    # a2v with the audio tower's own reading of video being ctx-only: audio's cross-modal keys of
    # video get no gradient from audio's side, and video reads clean audio
    _, a = tiny(video, audio, t, None, text, tasks="v2a")
    a.square().mean().backward()
    assert vb.ctx_tokens.grad.abs().sum() > 0  # video reads ctx only but feeds audio
    assert ab.ctx_tokens.grad.abs().sum() > 0


def test_context_tokens_gradient_is_zero_when_nothing_reads_them(tiny):
    """Video's context tokens get no gradient from an audio-only (t2a) batch."""
    video, audio, t, text = tiny_inputs()
    _, a = tiny(None, audio, t, None, text, tasks="t2a")
    a.square().mean().backward()
    assert all(p.grad is None for p in tiny.video_model.parameters())
    assert tiny.audio_model.blocks[1].cross_attn.ctx_tokens.grad.abs().sum() > 0


@pytest.mark.parametrize("window", [1, 2, 3, None])
@pytest.mark.parametrize("n_ctx", [0, 3])
def test_partitioned_equals_dense_reference(window, n_ctx):
    fusion = "ccl" if n_ctx else "ovi"
    model = randomize(DualStreamModel(tiny_config(tarp_window=window, n_ctx=n_ctx, fusion=fusion)))
    video, audio, t, text = tiny_inputs(batch=4)
    tasks = ["t2av", "a2v", "v2a", "t2av"]
    ctx_only = torch.tensor([False, False, False, True])
    fast = model(video, audio, t, None, text, tasks=tasks, ctx_only=ctx_only)
    with dense_tarp():
        dense = model(video, audio, t, None, text, tasks=tasks, ctx_only=ctx_only)
    for f, d in zip(fast, dense):
        torch.testing.assert_close(f, d, atol=1e-5, rtol=1e-5)


def test_partition_restricts_attention_to_the_window():
    """A query sees the keys of its own window and the context tokens, nothing else."""
    from ccl_core.tarp import Partition, cross_modal_attention
    g = torch.Generator().manual_seed(0)
    q_pos = torch.arange(8, dtype=torch.float64).repeat_interleave(4)  # 8 frames x 4 tokens
    k_pos = torch.arange(32, dtype=torch.float64) * 0.25  # 32 audio steps, 4 per frame
    q = torch.randn(2, 32, 2, 8, generator=g)
    k, v = torch.randn(2, 32, 2, 8, generator=g), torch.randn(2, 32, 2, 8, generator=g)
    k_ctx, v_ctx = torch.randn(3, 2, 8, generator=g), torch.randn(3, 2, 8, generator=g)
    part = Partition.build(q_pos, k_pos, 2)
    out = cross_modal_attention(q, k, v, k_ctx, v_ctx, None, None, part)
    k2, v2 = k.clone(), v.clone()
    k2[:, 8:], v2[:, 8:] = torch.randn(2, 24, 2, 8, generator=g), torch.randn(2, 24, 2, 8, generator=g)
    out2 = cross_modal_attention(q, k2, v2, k_ctx, v_ctx, None, None, part)
    torch.testing.assert_close(out[:, :8], out2[:, :8])  # frames 0-1 read audio steps 0-7 only
    assert (out[:, 8:] - out2[:, 8:]).abs().min() > 0
    # the context tokens are seen by every window
    out3 = cross_modal_attention(q, k, v, k_ctx, v_ctx * 2, None, None, part)
    assert ((out3 - out).abs().amax(dim=(2, 3)) > 0).all()


def _cross_modal_pairs(window, frames):
    """Query-key pairs the cross-modal attention really scores in one forward of a clip of `frames`
    latent video frames: every attention call is counted (an [N, H, Lq, K] call scores N*H*Lq*K
    pairs, padding included), and the joint run minus the two single-stream runs leaves the pairs
    spent on reading the other stream."""
    import torch.nn.functional as F
    pairs = []

    def counting(q, k, v, **kwargs):
        pairs.append(q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2])
        return F.scaled_dot_product_attention(q, k, v, **kwargs)

    cfg = tiny_config(tarp_window=window)
    model = DualStreamModel(cfg, attention=counting)
    g = torch.Generator().manual_seed(0)
    video = torch.randn(1, cfg.video_channels, frames, 4, 4, generator=g)
    audio = torch.randn(1, cfg.audio_channels, int(frames * cfg.audio_latent_rate / cfg.video_latent_fps), generator=g)
    text = torch.randn(1, 5, cfg.text_dim, generator=g)
    total = {}
    with torch.no_grad():
        for task, v, a in (("t2av", video, audio), ("t2v", video, None), ("t2a", None, audio)):
            pairs.clear()
            model(v, a, 0.5, None, text, tasks=task)
            total[task] = sum(pairs)
    return total["t2av"] - total["t2v"] - total["t2a"]


def test_partition_cost_is_linear_in_clip_length():
    """Measured, not computed: the pairs the partitioned cross-modal attention scores grow 4x for a
    4x longer clip, where full attention's grow 16x."""
    part5, part20 = _cross_modal_pairs(2, 8), _cross_modal_pairs(2, 32)
    dense5, dense20 = _cross_modal_pairs(None, 8), _cross_modal_pairs(None, 32)
    assert part5 > 0 and dense5 > 0
    assert dense20 == 16 * dense5  # the measure sees quadratic cost where there is one
    assert part20 <= 4 * part5 * 1.05, (part5, part20)
    assert part20 < dense20 / 3


def test_gated_fusion_starts_closed():
    """A freshly built gated baseline has its gates at zero (and so do the gates a pretrained
    checkpoint lacks), so the other stream has no effect at the start even when every other weight
    is trained-looking; opening a gate lets it through, so the check can fail."""
    cfg = tiny_config(fusion="gated", n_ctx=0)
    model = DualStreamModel(cfg)
    gates = {n: p for n, p in model.named_parameters() if n.endswith("fusion_gate")}
    assert len(gates) == 2 * cfg.num_layers and all(not g.any() for g in gates.values())
    fresh = DualStreamModel.fresh_parameters(cfg, list(gates))
    assert set(fresh) == set(gates) and all(not g.any() for g in fresh.values())
    trained = randomize(DualStreamModel(cfg)).state_dict()  # every weight but the gates: random values
    model.load_state_dict({k: v for k, v in trained.items() if k not in gates}, strict=False)
    assert all(not g.any() for g in gates.values())
    video, audio, t, text = tiny_inputs()
    other_audio = torch.randn_like(audio)
    v1, _ = model(video, audio, t, None, text)
    v2, _ = model(video, other_audio, t, None, text)
    torch.testing.assert_close(v1, v2)
    with torch.no_grad():
        gates["video_model.blocks.0.cross_attn.fusion_gate"].fill_(1.0)
    v3, _ = model(video, audio, t, None, text)
    v4, _ = model(video, other_audio, t, None, text)
    assert (v3 - v4).abs().max() > 1e-4


def test_zero_init_fusion_starts_as_a_no_op_that_learns():
    model = DualStreamModel(tiny_config(zero_init_fusion=True))
    fusion_values = {n: p.clone() for n, p in model.named_parameters() if ".v_fusion." in n}
    assert fusion_values and all(not v.any() for v in fusion_values.values())
    assert all(p.abs().sum() > 0 for n, p in model.named_parameters() if n.endswith("k_fusion.weight"))
    assert not DualStreamModel(tiny_config()).video_model.blocks[0].cross_attn.v_fusion.weight.eq(0).all()
    randomize(model)  # a trained-looking model whose fusion values are still the initial zeros
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in fusion_values:
                p.copy_(fusion_values[n])
    video, audio, t, text = tiny_inputs()
    v1, a1 = model(video, audio, t, None, text)
    v2, _ = model(video, torch.randn_like(audio), t, None, text)
    v3, a3 = model(video, audio, t, None, text, ctx_only=True)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(v1, v3)
    torch.testing.assert_close(a1, a3)
    (v1.square().mean() + a1.square().mean()).backward()
    grads = [p.grad for n, p in model.named_parameters() if n.endswith("v_fusion.weight")]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_skip_block_only_changes_skipped_rows(tiny):
    video, audio, t, text = tiny_inputs()
    v1, a1 = tiny(video, audio, t, None, text)
    v2, a2 = tiny(video, audio, t, None, text, skip_block=1, skip_rows=torch.tensor([True, False]))
    torch.testing.assert_close(v1[1], v2[1])
    assert (v1[0] - v2[0]).abs().max() > 1e-4
    # skipping equals a model without that block
    short = copy.deepcopy(tiny)
    del short.video_model.blocks[1], short.audio_model.blocks[1]
    short.config = tiny.config.replace(num_layers=1)
    v3, a3 = short(video, audio, t, None, text)
    v4, a4 = tiny(video, audio, t, None, text, skip_block=1)
    torch.testing.assert_close(v3, v4)
    torch.testing.assert_close(a3, a4)


def test_gradient_checkpointing_gives_the_same_gradients(tiny):
    video, audio, t, text = tiny_inputs()
    tiny.train()
    grads = []
    for ckpt in (False, True):
        tiny.gradient_checkpointing = ckpt
        tiny.zero_grad(set_to_none=True)
        v, a = tiny(video, audio, t, None, text)
        (v.square().mean() + a.square().mean()).backward()
        grads.append([p.grad.clone() for p in tiny.parameters() if p.grad is not None])
    for g1, g2 in zip(*grads):
        torch.testing.assert_close(g1, g2)


def test_rope_alignment_gives_equal_temporal_phase():
    from ccl_core.rope import audio_angles, video_angles
    cfg = tiny_config()  # 4 video latent fps, 16 audio latents/s: audio step 4j is video frame j
    split = cfg.rope_split
    va = video_angles((8, 2, 2), split, device=None)
    aa = audio_angles(32, split, cfg.audio_rope_factor)
    nt = split[0] // 2
    for f in range(8):
        torch.testing.assert_close(va[f * 4, :nt], aa[4 * f, :nt])  # token (f, 0, 0) vs audio step 4f
    assert not torch.allclose(va[4, :nt], aa[1, :nt])
    unaligned = audio_angles(32, split, tiny_config(aligned_rope=False).audio_rope_factor)
    assert not torch.allclose(va[4 * 4, :nt], unaligned[4 * 4, :nt])
    assert (aa[:, nt:] == 0).all()  # audio rotates only its time pairs


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("mutate, message", [
    (lambda v, a, t, x: (v[0], a, t, x), r"video latent must be \[B, C=4, T, H, W\]"),
    (lambda v, a, t, x: (v[:, :3], a, t, x), "video latent has 3 channels, the model expects 4"),
    (lambda v, a, t, x: (v, a[:, :, :10], t, x), "different durations"),
    (lambda v, a, t, x: (v, a[:, :2], t, x), "audio latent has 2 channels"),
    (lambda v, a, t, x: (v, a, t, x[..., :7]), "text embeddings are 7 wide, the model expects 16"),
    (lambda v, a, t, x: (v, a, t, torch.randn(2, 9, 16)), "at most 8"),
    (lambda v, a, t, x: (v.index_fill(2, torch.tensor([0]), float("nan")), a, t, x), "video latent contains NaN"),
    (lambda v, a, t, x: (v, a, torch.tensor([0.5, float("nan")]), x), "t_video contains NaN"),
    (lambda v, a, t, x: (v, a, torch.rand(3), x), r"t_video must be a scalar or have shape \[2\]"),
    (lambda v, a, t, x: (v[:1], a, t, x), "video batch 1 != audio batch 2"),
    (lambda v, a, t, x: (v[:, :, :, :7], a, t, x), "multiples of the patch"),
])
def test_bad_inputs_are_named(tiny, mutate, message):
    video, audio, t, text = mutate(*tiny_inputs())
    with pytest.raises(ValueError, match=message):
        tiny(video, audio, t, None, text)


def test_unknown_task_lists_the_tasks(tiny):
    video, audio, t, text = tiny_inputs()
    with pytest.raises(ValueError, match=r"Unknown task 'tv2a'; expected one of \['a2v', 'extend', 'i2av', 't2a', 't2av', 't2v', 'v2a'\]"):
        tiny(video, audio, t, None, text, tasks=["t2av", "tv2a"])
    with pytest.raises(ValueError, match="video is None"):
        tiny(None, audio, t, None, text, tasks="t2av")


def test_task_sampling_follows_the_mix():
    g = torch.Generator().manual_seed(0)
    draw = sample_tasks(20000, g)
    counts = {k: draw.tasks.count(k) / 20000 for k in TASKS}
    assert counts["t2av"] == pytest.approx(0.6, abs=0.02)
    assert counts["t2v"] == pytest.approx(0.05, abs=0.01)
    assert draw.null_text.float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert draw.ctx_only.float().mean().item() == pytest.approx(0.1, abs=0.01)
    routes = make_routes(draw.tasks[:8], 8, draw.ctx_only[:8])
    assert not (routes.video_reads_audio & draw.ctx_only[:8]).any()


def test_a_clean_prefix_runs_its_tokens_at_timestep_zero(tiny):
    """i2av's first latent frame: its tokens are modulated with t = 0's embedding, the rest with t.

    Reference: the same forward with the time embedding computed per token, by hand (Ovi's way: a
    [B, L] timestep through the embedding), checked against the model's select-at-use modulation."""
    video, audio, t, text = tiny_inputs()
    v_i2av, a_i2av = tiny(video, audio, t, None, text, tasks="i2av")
    v_t2av, a_t2av = tiny(video, audio, t, None, text, tasks="t2av")
    assert not torch.allclose(v_i2av, v_t2av) and not torch.allclose(a_i2av, a_t2av)  # audio reads the video

    tower = tiny.video_model
    real = tower.embed_time

    def per_token(sigma, dtype):  # every video token's own timestep: 0 on the first latent frame
        e, e0 = real(sigma, dtype)
        if sigma.abs().sum() == 0 or e.shape[0] != video.shape[0]:
            return e, e0
        e_zero, e0_zero = real(torch.zeros_like(sigma), dtype)
        tokens = video.shape[2] * (video.shape[3] // 2) * (video.shape[4] // 2)
        first = (torch.arange(tokens) < (video.shape[3] // 2) * (video.shape[4] // 2)).view(1, -1, 1)
        return torch.where(first, e_zero, e), torch.where(first.unsqueeze(-1), e0_zero, e0)

    tower.embed_time = per_token
    try:
        v_ref, a_ref = tiny(video, audio, t, None, text, tasks="t2av")
    finally:
        del tower.embed_time
    torch.testing.assert_close(v_i2av, v_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a_i2av, a_ref, rtol=1e-5, atol=1e-6)


def test_extension_span_and_bad_prefixes(tiny):
    video, audio, t, text = tiny_inputs()
    v, a = tiny(video, audio, t, None, text, tasks="extend", video_prefix=2, audio_prefix=8)
    v0, a0 = tiny(video, audio, t, None, text, tasks="t2av")
    assert not torch.allclose(a, a0)
    with pytest.raises(ValueError, match="needs the clean span's length"):
        tiny(video, audio, t, None, text, tasks="extend")
    with pytest.raises(ValueError, match="has no clean prefix"):
        tiny(video, audio, t, None, text, tasks="t2av", video_prefix=2)
    with pytest.raises(ValueError, match="leaves nothing to generate"):
        tiny(video, audio, t, None, text, tasks="extend", video_prefix=8, audio_prefix=8)
