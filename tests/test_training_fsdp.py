"""FSDP2 training on CPU (gloo): two ranks equal one process, sharded checkpoints resume exactly at world
size 2 and 1, and the export loads with load_checkpoint."""

import os
import shutil

import pytest
import torch

from multiproc import run_ranks

WORLD = 2
STEPS = 4


def config(**changes):
    from ccl_train import TrainConfig
    return TrainConfig(**{"steps": STEPS, "warmup_steps": 0, "lr_fusion": 1e-3, "lr_towers": 5e-4, "save_every": 2,
                          "keep_checkpoints": 0, "parallel": "fsdp", "fsdp_param_dtype": "fp32",
                          "gradient_checkpointing": True, **changes})


def rank_batch(rank: int):
    from conftest import tiny_inputs
    video, audio, _, text = tiny_inputs(2, seed=10 + rank)
    return {"video": video, "audio": audio, "text": text, "null_text": torch.zeros(1, 1, 16)}


def initial_model():
    from ccl_core import DualStreamModel, tiny_config
    from conftest import randomize
    torch.manual_seed(0)
    return randomize(DualStreamModel(tiny_config()), seed=0)


def worker(rank: int, port: int, out: str) -> None:
    """One torchrun-like rank: a straight run, then a resume from its step-2 checkpoint."""
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo")  # owned here, so both train() calls share it
    from ccl_train import TensorBatches, train

    def run(run_dir, resume):
        losses = []
        model = initial_model()
        if rank == 1 and not resume:  # ranks start different: rank 0's weights must win
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1.0)
        elif rank == 1:  # or the other ranks hold no weights at all
            model = model.to("meta")
        train(model, TensorBatches([rank_batch(rank)]), config(), run_dir, device="cpu", resume=resume,
              callback=lambda tr, r: losses.append((r.step, r.loss, r.grad_norm)))
        return losses

    straight = run(os.path.join(out, "straight"), False)
    dist.barrier()
    if rank == 0:
        resumed_dir = os.path.join(out, "resumed")
        shutil.copytree(os.path.join(out, "straight"), resumed_dir)
        shutil.rmtree(os.path.join(resumed_dir, "checkpoints", f"step-{STEPS:08d}"))
    dist.barrier()
    resumed = run(os.path.join(out, "resumed"), True)
    torch.save({"straight": straight, "resumed": resumed}, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def reference(steps: int):
    """One process doing the two ranks' arithmetic: each rank's draws, gradients averaged."""
    from ccl_train import EMA
    from ccl_train.dcr import prepare_batch
    from ccl_train.losses import flow_loss
    from ccl_train.optim import freeze, make_optimizer, set_lr

    cfg = config()
    model = initial_model()
    model.train()
    names = freeze(model, cfg)
    opt = make_optimizer(model, cfg)
    ema = EMA(model, names, cfg.ema_decay, cfg.ema_warmup)
    params = [p for p in model.parameters() if p.requires_grad]
    gens = [(torch.Generator().manual_seed(cfg.seed + r), torch.Generator().manual_seed(cfg.seed + r + (1 << 32)))
            for r in range(WORLD)]
    losses = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        table = 0
        for r in range(WORLD):
            fb = prepare_batch(rank_batch(r), cfg, *gens[r])
            pv, pa = model(fb.video, fb.audio, fb.t, fb.t, fb.text, tasks=fb.routes)
            loss = flow_loss(pv, pa, fb, cfg)
            (loss.total / WORLD).backward()
            table = table + loss.table
        for p in params:  # fsdp.py: every trainable parameter gets a gradient, zero where unused
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        set_lr(opt, step, cfg)
        opt.step()
        ema.update(model)
        streams = [table[-1, s, 0] / table[-1, s, 1] for s in range(2) if table[-1, s, 1]]
        losses.append((step + 1, float(sum(streams)), float(norm)))
    return model, ema, losses


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    return out, run_ranks(worker, out, WORLD, 120, "FSDP")


def full_state(dcp_dir, scratch):
    """Everything a DCP checkpoint holds (model, optim, ema) as whole tensors, read in this process."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
    path = os.path.join(scratch, f"full-{abs(hash(os.fspath(dcp_dir)))}.pt")
    if not os.path.exists(path):
        dcp_to_torch_save(dcp_dir, path)
    return torch.load(path, weights_only=False)


def flat(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from flat(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from flat(v, f"{prefix}.{i}")
    else:
        yield prefix, tree


def assert_same(a, b):
    a, b = dict(flat(a)), dict(flat(b))
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert (torch.equal(v, b[k]) if torch.is_tensor(v) else v == b[k]), k


def final_dcp(out, run="straight", step=STEPS):
    return out / run / "checkpoints" / f"step-{step:08d}" / "dcp"


def test_two_ranks_equal_one_process(two_rank_runs):
    out, ranks = two_rank_runs
    model, ema, losses = reference(STEPS)
    for got in ranks:  # every rank reports the global loss and gradient norm
        assert [s for s, _, _ in got["straight"]] == list(range(1, STEPS + 1))
        for (_, loss, norm), (_, ref_loss, ref_norm) in zip(got["straight"], losses):
            assert loss == pytest.approx(ref_loss, rel=1e-5, abs=1e-6)
            assert norm == pytest.approx(ref_norm, rel=1e-5, abs=1e-6)
    state = full_state(final_dcp(out), out)
    initial = dict(initial_model().named_parameters())
    moved = 0
    for name, p in model.named_parameters():
        torch.testing.assert_close(state["model"][name], p.detach(), rtol=1e-5, atol=1e-5, msg=name)
        moved += not torch.equal(state["model"][name], initial[name])
    assert moved > 0
    assert state["ema"].keys() == ema.shadow.keys()
    for name, s in ema.shadow.items():
        torch.testing.assert_close(state["ema"][name], s, rtol=1e-5, atol=1e-5, msg=name)


def test_resume_at_world_size_2_is_bit_exact(two_rank_runs):
    out, ranks = two_rank_runs
    for got in ranks:
        assert got["resumed"] == got["straight"][2:]  # steps 3 and 4: losses and norms bit for bit
    assert_same(full_state(final_dcp(out), out), full_state(final_dcp(out, "resumed"), out))  # weights, Adam, EMA
    with open(out / "straight" / "losses.csv") as f, open(out / "resumed" / "losses.csv") as g:
        assert [r.split(",")[:5] for r in f] == [r.split(",")[:5] for r in g]  # elapsed differs


def test_resume_at_world_size_1(two_rank_runs, tmp_path):
    """A 2-rank checkpoint loads into one rank unchanged, and a 1-rank run resumes bit-exactly."""
    from ccl_train import TensorBatches, train
    from ccl_train.distributed import DistInfo, teardown
    from ccl_train.fsdp import FSDPTrainer

    out, _ = two_rank_runs
    source = final_dcp(out, step=2).parent
    info = DistInfo()
    try:
        trainer = FSDPTrainer(initial_model(), config(), info=info)
        with pytest.warns(UserWarning, match="written by 2 ranks"):
            trainer.load(source)
        assert trainer.step_count == 2
        trainer.save(tmp_path)
    finally:
        teardown(info)
    state = full_state(source / "dcp", tmp_path)
    assert any(k.startswith("optim.state.") and k.endswith("exp_avg_sq") for k, _ in flat(state))
    assert_same(state, full_state(tmp_path / "dcp", tmp_path))

    def run(run_dir, resume, steps):
        losses = []
        train(initial_model(), TensorBatches([rank_batch(0), rank_batch(1)]), config(steps=steps), run_dir,
              device="cpu", resume=resume, callback=lambda tr, r: losses.append((r.step, r.loss, r.grad_norm)))
        return losses

    straight = run(tmp_path / "one", False, STEPS)
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    shutil.rmtree(final_dcp(tmp_path, "two").parent)
    assert straight[2:] == run(tmp_path / "two", True, STEPS)  # from the step-2 checkpoint
    assert_same(full_state(final_dcp(tmp_path, "one"), tmp_path), full_state(final_dcp(tmp_path, "two"), tmp_path))


def test_export_loads_with_load_checkpoint(two_rank_runs, tmp_path):
    from ccl_core.checkpoint import CONFIG_KEY, load_checkpoint, read_header
    from ccl_train.fsdp import export_checkpoint

    out, _ = two_rank_runs
    final = out / "straight" / "checkpoints" / f"step-{STEPS:08d}"
    path = export_checkpoint(final, tmp_path / "ccl.safetensors")
    header = read_header(path)
    assert header.metadata["step"] == str(STEPS) and header.metadata["ema"] == "1" and CONFIG_KEY in header.metadata
    loaded = load_checkpoint(path)
    state = full_state(final / "dcp", out)
    expected = {**state["model"], **state["ema"]}
    for name, p in loaded.state_dict().items():
        assert torch.equal(p, expected[name]), name
    half = load_checkpoint(export_checkpoint(final, tmp_path / "bf16.safetensors", weights="model", dtype="bf16"))
    assert half.video_model.head.head.weight.dtype == torch.bfloat16
    with pytest.raises(FileNotFoundError, match="not an FSDP training checkpoint"):
        export_checkpoint(tmp_path, tmp_path / "x.safetensors")


def test_command_line_on_one_process_and_export(tmp_path):
    """`python -m ccl_train --set parallel=fsdp` without torchrun (a one-rank group), then the export
    command; resuming that run as DDP is refused with the reason."""
    from ccl_core.checkpoint import load_checkpoint
    from ccl_train.__main__ import main
    from ccl_train.fsdp import main as export

    run = tmp_path / "cli"
    args = ["--run-dir", str(run), "--model", "preset:tiny", "--data", "test_training:make_source", "--stage",
            "joint", "--set", "warmup_steps=0", "--device", "cpu", "--set", "fsdp_param_dtype=fp32"]
    main(args + ["--set", "steps=1", "--set", "parallel=fsdp"])
    ckpt = run / "checkpoints" / "step-00000001"
    export([str(ckpt), str(tmp_path / "out.safetensors"), "--weights", "model"])
    assert load_checkpoint(tmp_path / "out.safetensors").config.name == "tiny"
    with pytest.raises(ValueError, match="parallel='fsdp' run"):
        main(args + ["--set", "steps=2", "--resume"])


def test_memory_estimate_counts_the_model():
    """The memory table's parameter counts are the model's own; sharded state divides by the ranks."""
    from ccl_core import DualStreamModel, tiny_config
    from ccl_train.memory import count_parameters, estimate

    cfg = tiny_config()
    model = DualStreamModel(cfg)
    n = count_parameters(cfg)
    assert n["total"] == sum(p.numel() for p in model.parameters())
    assert n["cross_modal"] == sum(p.numel() for p in model.param_groups()[0])
    assert n["pair"] == sum(p.numel() for p in model.video_model.blocks[1].parameters()) + \
        sum(p.numel() for p in model.audio_model.blocks[1].parameters())
    one, eight = estimate(cfg, 1, 100, 10), estimate(cfg, 8, 100, 10)
    assert one.params == 4 * n["total"] and one.adam == 8 * n["total"]
    assert eight.params * 8 == one.params and eight.checkpoints == one.checkpoints
    frozen = estimate(cfg, 8, 100, 10, trainable=0.1)
    assert frozen.adam == pytest.approx(eight.adam / 10) and frozen.params == eight.params
