"""Guidance formulas and the one-batch evaluation of all branches."""

import pytest
import torch

from ccl_core.guidance import Guidance, guided_velocity, ucg_decoupled, ucg_joint
from conftest import tiny_inputs


def test_formulas():
    u, ct, cf = torch.tensor(1.0), torch.tensor(2.0), torch.tensor(5.0)
    assert ucg_joint(u, cf, 3.0) == 1 + 3 * 4
    assert ucg_decoupled(u, ct, cf, 2.0, 0.5) == 1 + 2 * 1 + 0.5 * 3
    assert ucg_joint(u, cf, 1.0) == cf  # scale 1 is the conditional prediction (cfg shares this formula)
    # decoupled with equal scales is the joint form
    assert ucg_decoupled(u, ct, cf, 3.0, 3.0) == ucg_joint(u, cf, 3.0)


def test_unknown_form_is_named():
    with pytest.raises(ValueError, match="Unknown guidance form 'ucg'"):
        Guidance(form="ucg")


@pytest.mark.parametrize("form", ["joint", "decoupled", "cfg", "ovi", "none"])
def test_batched_branches_equal_separate_calls(tiny, form):
    video, audio, t, text = tiny_inputs()
    null = torch.zeros(1, 2, text.shape[2])
    g = Guidance(form=form, video_scale=3.0, audio_scale=2.0, video_av_scale=1.5, audio_av_scale=0.5, skip_block=1)
    calls = []
    hook = tiny.video_model.patch_embedding.register_forward_hook(lambda *a: calls.append(1))
    gv, ga = guided_velocity(tiny, video, audio, t, None, text, null, g)
    hook.remove()
    assert len(calls) == 1  # one model call for all branches
    null_b = torch.zeros_like(text)
    c_full = tiny(video, audio, t, None, text)
    if form == "none":
        ref = c_full
    elif form == "ovi":
        neg = tiny(video, audio, t, None, null_b, skip_block=1)
        ref = [n + w * (c - n) for n, c, w in zip(neg, c_full, (3.0, 2.0))]
    elif form == "cfg":
        u = tiny(video, audio, t, None, null_b)
        ref = [x + w * (c - x) for x, c, w in zip(u, c_full, (3.0, 2.0))]
    else:
        u = tiny(video, audio, t, None, null_b, ctx_only=True)
        if form == "joint":
            ref = [x + w * (c - x) for x, c, w in zip(u, c_full, (3.0, 2.0))]
        else:
            c_t = tiny(video, audio, t, None, text, ctx_only=True)
            ref = [x + wt * (ctt - x) + wa * (c - ctt)
                   for x, ctt, c, wt, wa in zip(u, c_t, c_full, (3.0, 2.0), (1.5, 0.5))]
    torch.testing.assert_close(gv, ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ga, ref[1], atol=1e-5, rtol=1e-5)


def test_guidance_with_a_held_stream(tiny):
    """a2v holds the audio clean: in every branch the audio runs at t = 0 and reads the context tokens
    only, so its guided value is the decoupled form over those branches (whatever t and the video
    are); the video is guided by the decoupled form over the a2v branches, each as run alone."""
    video, audio, t, text = tiny_inputs()
    null = torch.zeros_like(text)
    g = Guidance("decoupled", video_scale=3.0, audio_scale=2.0, video_av_scale=1.5, audio_av_scale=0.5)
    gv, ga = guided_velocity(tiny, video, audio, t, None, text, null, g, tasks="a2v")
    u = tiny(video, audio, t, None, null, tasks="a2v", ctx_only=True)
    c_t = tiny(video, audio, t, None, text, tasks="a2v", ctx_only=True)
    c_f = tiny(video, audio, t, None, text, tasks="a2v")
    torch.testing.assert_close(gv, u[0] + 3.0 * (c_t[0] - u[0]) + 1.5 * (c_f[0] - c_t[0]), atol=1e-5, rtol=1e-5)
    plain = tiny(video, audio, t, None, text)[0]  # the a2v route differs from t2av: the check can fail
    assert not torch.allclose(c_f[0], plain, atol=1e-4)
    # The held audio, from the hold's own terms (t2av routes, audio at an explicit t = 0, ctx-only):
    # every branch reads no video, so the av term is zero and only the text term is left.
    zero = torch.zeros_like(t)
    hu = tiny(video, audio, t, zero, null, ctx_only=True)[1]
    ht = tiny(video, audio, t, zero, text, ctx_only=True)[1]
    torch.testing.assert_close(ga, hu + 2.0 * (ht - hu), atol=1e-5, rtol=1e-5)
    _, ga_other = guided_velocity(tiny, torch.randn_like(video), audio, torch.rand_like(t), None, text, null, g,
                                  tasks="a2v")
    torch.testing.assert_close(ga_other, ga, atol=1e-5, rtol=1e-5)  # neither the video nor t reaches it
    _, ga_noised = guided_velocity(tiny, video, audio, t, None, text, null, g)  # t2av: noised and reading video
    assert not torch.allclose(ga_noised, ga, atol=1e-4)


def test_separate_audio_prompts_reach_the_audio_tower(tiny):
    """Ovi's negative prompts differ per stream: the audio tower sees its own texts."""
    video, audio, t, text = tiny_inputs()
    g = Guidance("ovi", skip_block=1)
    neg_v, neg_a = torch.randn(1, 3, 16), torch.randn(1, 4, 16)
    text_a = torch.randn_like(text)
    gv, ga = guided_velocity(tiny, video, audio, t, None, text, neg_v, g, text_audio=text_a, uncond_text_audio=neg_a)
    pad = lambda x, n: torch.cat([x, x.new_zeros(x.shape[0], n - x.shape[1], x.shape[2])], 1)
    nv, na = pad(neg_v.expand(2, -1, -1), 5), pad(neg_a.expand(2, -1, -1), 5)
    neg = tiny(video, audio, t, None, nv, text_audio=na, skip_block=1)
    pos = tiny(video, audio, t, None, text, text_audio=text_a)
    torch.testing.assert_close(gv, neg[0] + 4.0 * (pos[0] - neg[0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ga, neg[1] + 3.0 * (pos[1] - neg[1]), atol=1e-5, rtol=1e-5)


def test_the_embedded_models_guidance_is_one_fact():
    """The command line's defaults (generate()'s too) and the benchmarks' guidance are toyav.embedded GUIDANCE."""
    import dataclasses

    from ccl_core.__main__ import build_parser, guidance_from_args
    from ccl_core.toyav.embedded import GUIDANCE, SHIFT
    from ccl_lab.ablation import GUIDANCE as ABLATION_GUIDANCE
    from ccl_lab.evaluate import cli_guidance, settings_label

    args = build_parser().parse_args(["generate"])
    assert guidance_from_args(args) == GUIDANCE == cli_guidance() and args.shift == SHIFT
    assert GUIDANCE != Guidance()  # Ovi's scales (the dataclass's and the nodes' defaults) are not the toy's
    assert cli_guidance(video_scale=1.0) == dataclasses.replace(GUIDANCE, video_scale=1.0)
    assert cli_guidance(audio_scale=2.0).video_scale == GUIDANCE.video_scale
    assert settings_label(cli_guidance(video_scale=1.0)) == f"joint 1 / 3, dpmpp_2m, shift {SHIFT:g}"  # what JSONs record
    assert ABLATION_GUIDANCE["ucg_joint"] == GUIDANCE
    assert {g.video_scale for g in ABLATION_GUIDANCE.values()} == {GUIDANCE.video_scale}
    with pytest.raises(dataclasses.FrozenInstanceError):  # shared defaults cannot be changed in place
        GUIDANCE.video_scale = 9.0
