"""Block swap gives the same numbers and holds at most `resident + 1` block pairs on the device."""

import pytest
import torch

from ccl_core.offload import BlockSwap
from conftest import tiny_inputs


@pytest.mark.parametrize("resident", [0, 1])
def test_block_swap_matches_and_holds_one_block_at_a_time(tiny, resident):
    video, audio, t, text = tiny_inputs()
    ref = tiny(video, audio, t, None, text)
    swap = BlockSwap(tiny, "cpu", resident=resident)
    seen = []
    hooks = [b.self_attn.register_forward_pre_hook(lambda *a: seen.append(set(swap.loaded)))
             for b in tiny.video_model.blocks]
    with torch.no_grad():
        out = tiny(video, audio, t, None, text)
    for h in hooks:
        h.remove()
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b)
    assert seen == [set(range(resident)) | {i} for i in range(tiny.config.num_layers)]
    assert swap.loaded == set(range(resident))
    assert swap.transfers == tiny.config.num_layers - resident


def test_block_swap_refuses_training(tiny):
    BlockSwap(tiny, "cpu")
    tiny.train()
    video, audio, t, text = tiny_inputs()
    with pytest.raises(RuntimeError, match="BlockSwap is for inference"):
        tiny(video, audio, t, None, text)
