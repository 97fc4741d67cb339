import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

torch.set_num_threads(min(2, torch.get_num_threads()))


def randomize(model, std=0.2, seed=0):
    """Give every parameter non-trivial values (the real init zeroes the heads)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ctx_logit_bias"):
                continue
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if "norm" in name and p.ndim == 1 else 0.0))
    return model


@pytest.fixture
def tiny():
    from ccl_core import DualStreamModel, tiny_config
    torch.manual_seed(0)
    return randomize(DualStreamModel(tiny_config()))


def tiny_inputs(batch=2, seed=1, cfg=None):
    from ccl_core import tiny_config
    cfg = cfg or tiny_config()
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, cfg.video_channels, 8, 8, 8, generator=g)  # 8 latent frames = 2 s at 4 fps
    audio = torch.randn(batch, cfg.audio_channels, 32, generator=g)  # 32 latents = 2 s at 16 /s
    text = torch.randn(batch, 5, cfg.text_dim, generator=g)
    t = torch.rand(batch, generator=g)
    return video, audio, t, text


@pytest.fixture(scope="module")
def one_thread():
    """Two threads on a shared 2-core machine thrash (seconds per step); one is fast and exact.
    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
