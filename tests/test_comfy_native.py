"""The model as ComfyUI builds it (against tests/comfy_stub): unet_model factory, comfy.ops layers,
ComfyUI's attention dispatcher, lowvram-style weight casting, fp8 storage and interrupt between blocks.

The real ComfyUI checks of the same paths (LoRA through LoraLoaderModelOnly, partial loading) are in
tests/comfy_native_check.py, run by tests/test_comfy_integration.py when COMFYUI_PATH is set.
"""

import pytest
import torch

from conftest import randomize, tiny_inputs
from pack_loader import load_pack

pack = load_pack()
core = pack.ccl_core
import comfy.ldm.modules.attention as comfy_attention  # noqa: E402  (the stub, on sys.path after load_pack)
import comfy.model_management  # noqa: E402
import comfy.ops  # noqa: E402

native = pack.nodes.comfy_model
joint = pack.nodes.joint
latent_spec = pack.ccl_core.latent_spec


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return randomize(core.DualStreamModel(core.tiny_config())).eval()


def _native(net, weight_dtype=None):
    return native.model_from_state(net.state_dict(), net.config, latent_spec.model_spec(net.config),
                                   weight_dtype=weight_dtype)


def _call(dm, net, batch=2):
    """The native diffusion model's velocities and the plain ccl_core model's, same inputs."""
    video, audio, t, text = tiny_inputs(batch, cfg=net.config)
    with torch.no_grad():
        got = dm([video, audio], t * 1000.0, context=text)
        want = net(video, audio, t, t, text)
    return got, want


def test_built_by_the_unet_factory_from_comfy_ops(net):
    patcher = _native(net)
    dm = patcher.model.diffusion_model
    assert isinstance(dm, native.CCLDualStream) and isinstance(dm, core.DualStreamModel)
    assert dm.state_dict().keys() == net.state_dict().keys()  # Ovi's layout: video_model.* / audio_model.*
    layers = [m for m in dm.modules() if type(m).__module__ == "comfy.ops"]
    kinds = {type(m).__name__ for m in layers}
    assert {"Linear", "Conv1d", "Conv3d", "LayerNorm", "RMSNorm"} <= kinds
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in dm.modules())
    assert n_linear == sum(isinstance(m, comfy.ops.disable_weight_init.Linear) for m in dm.modules())
    assert patcher.model.get_dtype() == torch.float32 and patcher.model.manual_cast_dtype is None


def test_output_equals_core_and_attention_goes_through_comfy(net):
    dm = _native(net).model.diffusion_model
    before = comfy_attention.CALLS[0]
    (gv, ga), (wv, wa) = _call(dm, net)
    # self, text and cross-modal attention of each tower in each block
    assert comfy_attention.CALLS[0] - before == 2 * net.config.num_layers * 3
    torch.testing.assert_close(gv, wv, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ga, wa, rtol=1e-5, atol=1e-5)


def test_attention_scale_is_folded_into_the_queries():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 16, generator=g) for _ in range(3))
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.05)
    torch.testing.assert_close(native.comfy_attention(q, k, v, scale=0.05), want, rtol=1e-5, atol=1e-6)


def test_lowvram_cast_mode_gives_the_same_output(net):
    """ComfyUI's partial loading switches layers to cast-per-call (comfy_cast_weights); the result holds."""
    dm = _native(net).model.diffusion_model
    cast = [m for m in dm.modules() if hasattr(m, "comfy_cast_weights")]
    for m in cast:
        m.comfy_cast_weights = True
    try:
        (gv, ga), (wv, wa) = _call(dm, net)
    finally:
        for m in cast:
            m.comfy_cast_weights = False
    torch.testing.assert_close(gv, wv, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ga, wa, rtol=1e-5, atol=1e-5)


def test_fp8_storage_computes_in_the_cast_dtype(net):
    patcher = _native(net, weight_dtype=torch.float8_e4m3fn)
    dm = patcher.model.diffusion_model
    assert dm.video_model.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn
    assert dm.video_model.blocks[0].norm3.weight.dtype == torch.bfloat16  # small tensors stay 16-bit
    assert patcher.model.manual_cast_dtype == torch.float32
    assert isinstance(dm.video_model.blocks[0].ffn[0], comfy.ops.manual_cast.Linear)
    (gv, ga), (wv, wa) = _call(dm, net)
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    assert gv.dtype == torch.float32 and rel(gv, wv) < 0.1 and rel(ga, wa) < 0.1  # fp8 rounding only


def test_interrupt_lands_between_blocks(net):
    """/interrupt is honoured inside a step: the next block pair does not run."""
    dm = _native(net).model.diffusion_model
    ran = []
    check = dm.before_block

    def before(i):
        ran.append(i)
        if i == 1:
            comfy.model_management.interrupt_current_processing(True)
        check(i)

    dm.before_block = before
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        _call(dm, net)
    assert ran == [0, 1]  # stopped before block pair 1 ran, not at the end of the step


def test_block_swap_keeps_the_first_pairs_and_the_output(net):
    import comfy.patcher_extension
    patcher = _native(net)
    with pytest.raises(ValueError, match=r"-1 \(ComfyUI decides\) or 0..2"):
        native.with_block_swap(patcher, 3)
    assert native.with_block_swap(patcher, -1).get_all_callbacks(comfy.patcher_extension.CallbacksMP.ON_LOAD) == []
    swapped = native.with_block_swap(patcher, 1)
    (on_load,) = swapped.get_all_callbacks(comfy.patcher_extension.CallbacksMP.ON_LOAD)
    assert patcher.get_all_callbacks(comfy.patcher_extension.CallbacksMP.ON_LOAD) == []  # a clone was patched
    dm = swapped.model.diffusion_model
    on_load(swapped, torch.device("cpu"), 0, False, True)  # loaded onto the offload device: nothing to swap
    assert not any(getattr(m, "comfy_cast_weights", False) for m in dm.modules())
    on_load(swapped, torch.device("meta"), 0, False, True)  # "the GPU": pairs 1.. cast per call from offload
    try:
        resident = [m for m in dm.video_model.blocks[0].modules() if hasattr(m, "comfy_cast_weights")]
        offloaded = [m for i in (1,) for t in (dm.video_model, dm.audio_model) for m in t.blocks[i].modules()
                     if hasattr(m, "comfy_cast_weights")]
        assert resident and not any(m.comfy_cast_weights for m in resident)
        assert offloaded and all(m.comfy_cast_weights and m.prev_comfy_cast_weights is False for m in offloaded)
        (gv, ga), (wv, wa) = _call(dm, net)
        torch.testing.assert_close(gv, wv, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ga, wa, rtol=1e-5, atol=1e-5)
    finally:
        for m in dm.modules():
            if hasattr(m, "prev_comfy_cast_weights"):
                m.comfy_cast_weights = m.prev_comfy_cast_weights
                del m.prev_comfy_cast_weights


def test_the_model_holds_what_its_task_does_not_generate(net):
    """No sampler mask: a2v's audio and v2a's video denoise to the clean latent, an absent stream to zeros,
    and the generated stream is the model's own (ComfyUI versions read a joint-latent mask differently)."""
    dm = _native(net).model.diffusion_model
    video, audio, t, text = tiny_inputs(5, cfg=net.config)
    g = torch.Generator().manual_seed(7)
    clean_v, clean_a = torch.randn(video.shape, generator=g), torch.randn(audio.shape, generator=g)
    ids = torch.tensor([pack.ccl_core.routing.task_index(k) for k in ("t2av", "t2v", "t2a", "a2v", "v2a")])
    with torch.no_grad():
        v, a = dm([video, audio], t * 1000.0, context=text, ccl_task=ids, ccl_clean_video=clean_v,
                  ccl_clean_audio=clean_a)
        ref_v, ref_a = net(video, audio, t, t, text, tasks=["t2av", "t2v", "t2a", "a2v", "v2a"])
    s = t.view(-1, 1, 1, 1, 1)
    x0_v, x0_a = video - s * v, audio - s.view(-1, 1, 1) * a
    torch.testing.assert_close(x0_a[1], torch.zeros_like(x0_a[1]), atol=1e-5, rtol=0)  # t2v: no audio
    torch.testing.assert_close(x0_v[2], torch.zeros_like(x0_v[2]), atol=1e-5, rtol=0)  # t2a: no video
    torch.testing.assert_close(x0_a[3], clean_a[3], atol=1e-5, rtol=0)  # a2v: the given audio
    torch.testing.assert_close(x0_v[4], clean_v[4], atol=1e-5, rtol=0)  # v2a: the given video
    for row, stream in ((0, "v"), (0, "a"), (1, "v"), (2, "a"), (3, "v"), (4, "a")):  # generated: the model's
        got, want = (v, ref_v) if stream == "v" else (a, ref_a)
        if row in (3, 4):  # its conditioning stream is the clean latent, not this row's noisy input
            continue
        torch.testing.assert_close(got[row], want[row], atol=1e-5, rtol=1e-5)
