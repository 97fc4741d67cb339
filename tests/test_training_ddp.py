"""Data parallel training: two CPU processes (gloo, loopback) keep identical replicas."""

import os

import torch
from safetensors.torch import load_file

from multiproc import run_ranks

WORLD = 2
BATCH = 2


def worker(rank: int, port: int, out: str) -> None:
    """One rank as torchrun would start it: the environment names the group, train() joins it."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    from ccl_core import DualStreamModel, tiny_config
    from ccl_train import TensorBatches, TrainConfig, train
    from conftest import randomize, tiny_inputs

    torch.manual_seed(rank)
    model = randomize(DualStreamModel(tiny_config()), seed=rank)  # ranks start different: DDP broadcasts rank 0
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    video, audio, _, text = tiny_inputs(BATCH, seed=10 + rank)  # different data per rank
    data = TensorBatches([{"video": video, "audio": audio, "text": text, "null_text": torch.zeros(1, 1, 16)}])
    cfg = TrainConfig(steps=3, warmup_steps=0, lr_fusion=1e-3, lr_towers=1e-3, save_every=3)
    tasks = []
    trainer = train(model, data, cfg, os.path.join(out, "run"), device="cpu",
                    callback=lambda tr, r: tasks.append(r.tasks))
    torch.save({"params": {n: p.detach() for n, p in model.named_parameters()}, "initial": initial,
                "ema": trainer.ema.shadow, "tasks": tasks}, os.path.join(out, f"rank{rank}.pt"))


def test_two_ranks_stay_identical(tmp_path):
    r0, r1 = run_ranks(worker, tmp_path, WORLD, 60, "DDP")
    for n, p in r0["params"].items():
        assert torch.equal(p, r1["params"][n]), n
        assert torch.equal(r0["ema"].get(n, p), r1["ema"].get(n, p)), n
    assert any(not torch.equal(p, r0["initial"][n]) for n, p in r0["params"].items())
    assert r0["tasks"] != r1["tasks"]  # each rank draws its own tasks (seed + rank)

    ckpt = tmp_path / "run" / "checkpoints" / "step-00000003"
    assert sorted(os.listdir(ckpt)) == ["ema.safetensors", "model.safetensors", "rank-00000.pt",
                                        "rank-00001.pt", "trainer.pt"]
    saved = load_file(ckpt / "model.safetensors")
    assert all(torch.equal(saved[n], p) for n, p in r0["params"].items())
    with open(tmp_path / "run" / "losses.csv") as f:
        totals = [line.split(",") for line in f if ",all,total," in line]
    assert len(totals) == 3
    assert all(int(row[4]) >= WORLD * BATCH for row in totals)  # rows of both ranks are counted
