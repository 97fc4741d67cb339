"""Validation losses per task: the same draws for every task, so routes alone make the difference."""

import pytest
import torch

from ccl_core import DualStreamModel, tiny_config
from ccl_train import stage_config
from ccl_train.validation import validation_losses
from conftest import tiny_inputs

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=6):
    video, audio, _, text = tiny_inputs(n, seed=3)
    return {"video": video, "audio": audio, "text": text}


def _perturb(model):
    """Move every weight but the fusion gate off its initial value (the zero-initialised heads would
    otherwise predict 0 whatever the inputs)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("fusion_gate"):
                p.add_(torch.randn_like(p) * 0.05)


def test_tasks_share_their_draws_and_differ_only_by_route():
    torch.manual_seed(0)
    gated = DualStreamModel(tiny_config(fusion="gated", n_ctx=0, tarp_window=None))
    _perturb(gated)  # non-zero outputs, but the gate stays at zero: no cross-modal path
    gated.train()
    losses = validation_losses(gated, _data(), stage_config("joint"), batch_size=4)
    assert set(losses) == {"t2v", "t2a", "t2av", "v2a", "a2v"}
    assert set(losses["t2v"]) == {"video"} and set(losses["v2a"]) == {"audio"} and set(losses["t2av"]) == {
        "video", "audio"}
    # neither stream sees the other: the same clips, t and noise give the same loss whatever the route
    assert losses["t2v"]["video"] == pytest.approx(losses["a2v"]["video"], rel=1e-5)
    assert losses["t2v"]["video"] == pytest.approx(losses["t2av"]["video"], rel=1e-5)
    assert losses["t2a"]["audio"] == pytest.approx(losses["v2a"]["audio"], rel=1e-5)
    assert losses["t2a"]["audio"] != pytest.approx(losses["t2v"]["video"], rel=1e-3)
    assert gated.training  # restored
    other = validation_losses(gated, _data(), stage_config("joint"), batch_size=6)  # batching changes nothing
    assert [v for d in other.values() for v in d.values()] == pytest.approx(
        [v for d in losses.values() for v in d.values()], rel=1e-5)


def test_a_model_that_reads_the_other_stream_gains_from_it():
    torch.manual_seed(0)
    model = DualStreamModel(tiny_config())  # CCL: the audio reads the video from the start
    _perturb(model)
    losses = validation_losses(model, _data(), stage_config("joint"), tasks=("t2a", "v2a"), seed=5)
    assert losses["t2a"]["audio"] != pytest.approx(losses["v2a"]["audio"], rel=1e-6)
    again = validation_losses(model, _data(), stage_config("joint"), tasks=("v2a",), seed=5)
    assert again["v2a"]["audio"] == pytest.approx(losses["v2a"]["audio"], rel=1e-9)
