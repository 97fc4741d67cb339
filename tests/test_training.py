"""Training: DCR batches, routed losses, optimizer groups, EMA, exact resume, logs, CLI."""

import contextlib
import csv
import math
import os

import pytest
import torch
from safetensors.torch import load_file

from ccl_core import DualStreamModel, tiny_config
from ccl_core.checkpoint import load_checkpoint
from ccl_core.routing import TASKS, make_routes
from ccl_train import EMA, TensorBatches, TrainConfig, Trainer, check_batch, stage_config, train
from ccl_train.dcr import FlowBatch, drop_text, prepare_batch
from ccl_train.logs import COLUMNS
from ccl_train.losses import flow_loss
from ccl_train.optim import lr_factor, param_sets
from conftest import randomize, tiny_inputs


pytestmark = pytest.mark.usefixtures("one_thread")


def make_batch(size=2, seed=1, null_len=3):
    video, audio, _, text = tiny_inputs(size, seed)
    return {"video": video, "audio": audio, "text": text, "null_text": torch.randn(1, null_len, 16)}


def fast(**changes):
    return TrainConfig(**{"warmup_steps": 0, "lr_fusion": 1e-3, "lr_towers": 1e-3, **changes})


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return randomize(DualStreamModel(tiny_config()), seed=seed)


# ---------------------------------------------------------------------- DCR batches
def test_task_mix_and_dropout_rates_are_honoured():
    n = 4000
    g = torch.Generator().manual_seed(0)
    batch = {"video": torch.randn(n, 4, 1, 2, 2, generator=g), "audio": torch.randn(n, 3, 4, generator=g),
             "text": torch.randn(n, 2, 16, generator=g) + 5, "null_text": torch.zeros(1, 3, 16)}
    cfg = TrainConfig()
    fb = prepare_batch(batch, cfg, torch.Generator().manual_seed(1), torch.Generator().manual_seed(2))
    for task, p in cfg.task_mix.items():
        assert abs(sum(t == task for t in fb.tasks) / n - p) < 0.025, task
    dropped = (fb.text == 0).all(-1).all(-1)
    assert abs(dropped.float().mean().item() - 0.1) < 0.02
    full = torch.tensor([t in ("t2av", "a2v") for t in fb.tasks])  # tasks whose video reads audio
    ctx_only = full & ~fb.routes.video_reads_audio
    assert abs(ctx_only.sum().item() / full.sum().item() - 0.1) < 0.025
    # text dropout and route dropout are independent
    assert abs((ctx_only & dropped).sum().item() / full.sum().item() - 0.01) < 0.01


def test_noised_inputs_targets_and_shared_noise_level():
    batch = make_batch(size=5)
    cfg = TrainConfig(task_mix={"t2av": 1, "a2v": 1, "v2a": 1}, timestep_dist="uniform")
    fb = prepare_batch(batch, cfg, torch.Generator().manual_seed(3), torch.Generator().manual_seed(4))
    for stream, x0, inp, target in (("video", batch["video"], fb.video, fb.video_target),
                                    ("audio", batch["audio"], fb.audio, fb.audio_target)):
        t = fb.t.view(-1, *[1] * (x0.ndim - 1))
        noised = getattr(fb.routes, f"{stream}_loss")
        eps = target + x0
        expected = torch.where(noised.view(-1, *[1] * (x0.ndim - 1)), (1 - t) * x0 + t * eps, x0)
        torch.testing.assert_close(inp, expected)  # x_t = (1 - t) x0 + t eps on noised rows, x0 on clean ones
        clean = getattr(fb.routes, f"{stream}_clean")
        assert torch.equal(inp[clean], x0[clean])
    assert set(fb.tasks) <= {"t2av", "a2v", "v2a"}


def test_drop_text_pads_both_to_the_longer_length():
    text = torch.randn(3, 2, 4)
    null = torch.randn(1, 5, 4)
    out = drop_text(text, null, torch.tensor([False, True, False]))
    assert out.shape == (3, 5, 4)
    assert torch.equal(out[1], null[0])
    assert torch.equal(out[0, :2], text[0]) and not out[0, 2:].any()
    assert drop_text(text, null, torch.tensor([False] * 3)) is text


def test_timestep_distributions():
    g = torch.Generator().manual_seed(0)
    from ccl_train.timesteps import sample_timesteps
    u = sample_timesteps(20000, TrainConfig(timestep_dist="uniform"), g)
    ln = sample_timesteps(20000, TrainConfig(), g)
    shifted = sample_timesteps(20000, TrainConfig(timestep_shift=3.0), g)
    assert abs(u.mean() - 0.5) < 0.01 and abs(ln.median() - 0.5) < 0.02
    assert ((ln > 0.2) & (ln < 0.8)).float().mean() > ((u > 0.2) & (u < 0.8)).float().mean()
    assert shifted.median() > 0.7  # 3 * 0.5 / (1 + 2 * 0.5) = 0.75
    assert 0 <= ln.min() and ln.max() <= 1


def test_mixed_batch_with_t2a_rows_matches_single_sample_runs():
    """t2a rows next to video rows: each row's routed outputs equal that sample run alone."""
    model = tiny_model()
    batch = make_batch(size=6)
    cfg = TrainConfig(task_mix={"t2a": 1, "t2v": 1, "t2av": 1, "a2v": 1}, p_ctx_only=0.3)
    fb = prepare_batch(batch, cfg, torch.Generator().manual_seed(3), torch.Generator().manual_seed(6))
    assert set(fb.tasks) == {"t2a", "t2v", "t2av", "a2v"} and not fb.routes.video_reads_audio.all()
    with torch.no_grad():
        v, a = model(fb.video, fb.audio, fb.t, fb.t, fb.text, tasks=fb.routes)
        for i, task in enumerate(fb.tasks):
            routes = fb.routes.select(torch.tensor([i]))
            spec = TASKS[task]
            vi, ai = model(None if spec.video == "absent" else fb.video[i:i + 1],
                           None if spec.audio == "absent" else fb.audio[i:i + 1],
                           fb.t[i:i + 1], fb.t[i:i + 1], fb.text[i:i + 1], tasks=routes)
            if fb.routes.video_loss[i]:
                torch.testing.assert_close(v[i:i + 1], vi, atol=1e-5, rtol=1e-5)
            if fb.routes.audio_loss[i]:
                torch.testing.assert_close(a[i:i + 1], ai, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- losses
def test_loss_counts_only_routed_rows_averaged_per_stream():
    tasks = ["a2v", "v2a", "t2av"]
    routes = make_routes(tasks, 3)
    video_t, audio_t = torch.zeros(3, 4, 2, 2, 2), torch.zeros(3, 3, 8)
    fb = FlowBatch(None, None, video_t, audio_t, torch.rand(3), torch.zeros(3, 1, 16), tasks, routes)
    pv = torch.stack([torch.full((4, 2, 2, 2), 1.0), torch.full((4, 2, 2, 2), 100.0), torch.full((4, 2, 2, 2), 3.0)])
    pa = torch.stack([torch.full((3, 8), 100.0), torch.full((3, 8), 2.0), torch.full((3, 8), 4.0)])
    out = flow_loss(pv, pa, fb, TrainConfig(video_loss_weight=1.0, audio_loss_weight=0.5))
    assert out.streams["video"].item() == pytest.approx((1 + 9) / 2)  # a2v and t2av rows; v2a video is clean
    assert out.streams["audio"].item() == pytest.approx((4 + 16) / 2)  # v2a and t2av rows; a2v audio is clean
    assert out.total.item() == pytest.approx(5 + 0.5 * 10)
    from ccl_train.losses import TASK_ORDER
    a2v, t2av = TASK_ORDER.index("a2v"), TASK_ORDER.index("t2av")
    assert out.table[a2v].tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert out.table[t2av].tolist() == [[9.0, 1.0], [16.0, 1.0]]
    assert out.table[-1].tolist() == [[10.0, 2.0], [20.0, 2.0]]


def test_t2v_batch_leaves_the_audio_tower_alone():
    model = tiny_model()
    audio_only = param_sets(model)["audio"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = Trainer(model, fast(task_mix={"t2v": 1.0}), device="cpu")
    result = trainer.step(make_batch())
    assert result.streams["audio"] is None and result.streams["video"] > 0
    assert set(result.tasks) == {"t2v"}
    params = dict(model.named_parameters())
    for n in audio_only:
        assert params[n].grad is None or not params[n].grad.any(), n
        assert torch.equal(params[n], before[n]), n
    assert not torch.equal(params["video_model.head.head.weight"], before["video_model.head.head.weight"])


def test_video_only_data_with_the_video_stage():
    batch = make_batch()
    del batch["audio"]
    with pytest.raises(KeyError, match="t2av"):
        Trainer(tiny_model(), fast(), device="cpu").step(batch)
    cfg = stage_config("video", warmup_steps=0)
    model = tiny_model()
    trainer = Trainer(model, cfg, device="cpu")
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("audio_model."))
    assert trainer.step(batch).streams["audio"] is None


# ---------------------------------------------------------------------- optimizer, stages, EMA
def test_learning_rate_groups_schedule_and_freezing():
    model = tiny_model()
    cfg = fast(lr_fusion=1e-3, lr_towers=1e-5, warmup_steps=4, schedule="cosine", steps=10, min_lr_ratio=0.1)
    trainer = Trainer(model, cfg, device="cpu")
    fusion = {id(p) for p in model.param_groups()[0]}
    for g in trainer.optimizer.param_groups:
        assert all((id(p) in fusion) == (g["kind"] == "fusion") for p in g["params"])
        assert g["base_lr"] == (1e-3 if g["kind"] == "fusion" else 1e-5)
        assert g["weight_decay"] == (0.0 if g["name"].endswith("no_decay") else cfg.weight_decay)
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(list(model.parameters()))
    result = trainer.step(make_batch())
    assert result.lr == {"fusion": pytest.approx(1e-3 / 4), "towers": pytest.approx(1e-5 / 4)}
    assert [lr_factor(s, cfg) for s in (0, 3, 4)] == [0.25, 1.0, 1.0]
    assert lr_factor(7, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(10, cfg) == pytest.approx(0.1)

    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = Trainer(model, stage_config("fusion", warmup_steps=0, ema_decay=None), device="cpu")
    trainer.step(make_batch())
    fusion_names = set(param_sets(model)["fusion"])
    for n, p in model.named_parameters():
        assert p.requires_grad == (n in fusion_names)
        if n not in fusion_names:
            assert torch.equal(p, before[n]), n
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in fusion_names)
    assert {g["kind"] for g in trainer.optimizer.param_groups} == {"fusion"}


def test_stage_presets_and_config_round_trip():
    video, audio, joint = stage_config("video"), stage_config("audio"), stage_config("joint")
    assert video.task_mix == {"t2v": 1.0} and video.train == ("video",)
    assert audio.task_mix == {"t2a": 1.0} and audio.train == ("audio",)
    assert joint.task_mix == {"t2av": 0.6, "a2v": 0.15, "v2a": 0.15, "t2v": 0.05, "t2a": 0.05}
    assert TrainConfig.from_json(joint.to_json()) == joint
    with pytest.raises(ValueError, match="Unknown TrainConfig fields"):
        TrainConfig.from_dict({"lr": 1})
    with pytest.raises(ValueError, match="task_mix has unknown tasks"):
        TrainConfig(task_mix={"t2x": 1})
    with pytest.raises(ValueError, match="Unknown stage"):
        stage_config("warmup")
    with pytest.raises(ValueError, match="nothing to train"):
        Trainer(tiny_model(), TrainConfig(train=("fusion",), lr_fusion=0.0), device="cpu")


def test_ema_update_math_and_swap():
    model = torch.nn.Linear(2, 2)
    names = [n for n, _ in model.named_parameters()]
    ema = EMA(model, names, decay=0.9, warmup=False)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["weight"], 0.9 * w0 + 0.1 * (w0 + 1.0))
    warm = EMA(model, names, decay=0.999, warmup=True)
    assert warm.current_decay() == pytest.approx(0.1)
    warm.updates = 2
    assert warm.current_decay() == pytest.approx(3 / 12)
    warm.updates = 10**5
    assert warm.current_decay() == 0.999
    live = model.weight.detach().clone()
    with ema.applied(model):
        assert torch.equal(model.weight, ema.shadow["weight"])
    assert torch.equal(model.weight, live)


# ---------------------------------------------------------------------- runs, resume, logs
class RandomBatches:
    """Endless batches drawn from torch's global generator, with a resumable position."""

    def __init__(self):
        self.n = 0

    def __iter__(self):
        while True:
            self.n += 1
            video, audio, _, text = tiny_inputs(2, seed=self.n)  # position-dependent and ...
            audio = audio + torch.randn(())  # ... drawn from the global generator
            yield {"video": video, "audio": audio, "text": text, "null_text": torch.zeros(1, 2, 16)}

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def resume_config(steps):
    return fast(steps=steps, seed=7, warmup_steps=2, schedule="cosine", p_null_text=0.3, p_ctx_only=0.3,
                ema_decay=0.9, save_every=100, weight_decay=0.1)


def test_exact_resume_and_loss_log(tmp_path):
    straight = train(tiny_model(), RandomBatches(), resume_config(6), tmp_path / "a", device="cpu")
    train(tiny_model(), RandomBatches(), resume_config(3), tmp_path / "b", device="cpu")
    with pytest.raises(FileExistsError, match="resume=True"):
        train(tiny_model(), RandomBatches(), resume_config(6), tmp_path / "b", device="cpu")
    resumed = train(tiny_model(seed=99), RandomBatches(), resume_config(6), tmp_path / "b", device="cpu",
                    resume=True)
    assert resumed.step_count == straight.step_count == 6
    for (n, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), n
    for n, s in straight.ema.shadow.items():
        assert torch.equal(s, resumed.ema.shadow[n]), n
    assert straight.optimizer.state_dict()["state"].keys() == resumed.optimizer.state_dict()["state"].keys()

    def rows(run):
        with open(tmp_path / run / "losses.csv", newline="") as f:
            return list(csv.DictReader(f))

    a, b = rows("a"), rows("b")
    assert tuple(a[0]) == COLUMNS
    assert [{k: v for k, v in r.items() if k != "elapsed"} for r in a] == \
           [{k: v for k, v in r.items() if k != "elapsed"} for r in b]
    assert sorted({int(r["step"]) for r in a}) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):
        mine = [r for r in a if int(r["step"]) == step]
        total = [r for r in mine if r["task"] == "all" and r["stream"] == "total"]
        assert len(total) == 1
        assert int(total[0]["count"]) == sum(int(r["count"]) for r in mine if r["task"] not in ("all",))
        assert {r["task"] for r in mine} <= set(TASKS) | {"all"}

    ckpt = tmp_path / "b" / "checkpoints" / "step-00000006"
    assert sorted(os.listdir(tmp_path / "b" / "checkpoints")) == ["step-00000003", "step-00000006"]
    ema_model = load_checkpoint(ckpt / "ema.safetensors")
    for n, p in ema_model.named_parameters():
        assert torch.equal(p, resumed.ema.shadow[n]), n
    assert load_file(ckpt / "model.safetensors").keys() == resumed.model.state_dict().keys()
    with resumed.ema_weights() as m:
        assert torch.equal(m.video_model.head.head.weight, resumed.ema.shadow["video_model.head.head.weight"])


def test_a_constant_run_cooled_down_with_wsd_is_the_wsd_run(tmp_path):
    """Warmup-stable-decay: a finished constant-lr run resumed with a longer wsd schedule ends exactly where
    the wsd run from scratch does (how the shipped ToyAV model was cooled down), and only the schedule
    change is warned about."""
    import warnings

    def cfg(steps, **kw):
        return fast(steps=steps, seed=7, warmup_steps=2, ema_decay=0.9, save_every=100, min_lr_ratio=0.1, **kw)

    wsd = dict(schedule="wsd", decay_steps=3)
    assert [round(lr_factor(s, cfg(8, **wsd)), 4) for s in range(8)] == [0.5, 1, 1, 1, 1, 1, 0.7, 0.4]
    straight = train(tiny_model(), RandomBatches(), cfg(8, **wsd), tmp_path / "a", device="cpu")
    train(tiny_model(), RandomBatches(), cfg(5), tmp_path / "b", device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cooled = train(tiny_model(), RandomBatches(), cfg(8, **wsd), tmp_path / "b", device="cpu", resume=True)
    assert [str(w.message).split(":")[0] for w in caught if w.category is UserWarning] == [
        f"resuming {tmp_path / 'b'} with changed settings ['decay_steps', 'schedule']"]
    for (n, p), q in zip(straight.model.named_parameters(), cooled.model.parameters()):
        assert torch.equal(p, q), n
    assert cooled.elapsed > 0


@pytest.mark.parametrize("changes, message", [(dict(schedule="wsd"), "needs 0 < decay_steps <= steps - warmup_steps"),
                                              (dict(schedule="wsd", decay_steps=20), "needs 0 < decay_steps"),
                                              (dict(decay_steps=5), "only used by schedule 'wsd'"),
                                              (dict(min_lr_ratio=2.0), "min_lr_ratio must be in")])
def test_bad_schedules_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        fast(steps=10, warmup_steps=2, **changes)


def test_a_resume_does_not_warn_about_a_field_the_old_run_predates(tmp_path):
    import json
    import warnings
    train(tiny_model(), RandomBatches(), resume_config(2), tmp_path, device="cpu")
    path = tmp_path / "train_config.json"
    old = json.loads(path.read_text())
    del old["decay_steps"]  # written before the field existed; its default is what that run did
    path.write_text(json.dumps(old))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(tiny_model(), RandomBatches(), resume_config(3), tmp_path, device="cpu", resume=True)


def test_resume_needs_a_run_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("not a run")
    with pytest.raises(FileExistsError, match="not a training run"):
        train(tiny_model(), RandomBatches(), resume_config(1), tmp_path, device="cpu", resume=True)


def test_overfits_a_tiny_fixed_batch():
    """30 steps on one batch bring the loss at fixed draws well down (constant per-channel latents)."""
    g = torch.Generator().manual_seed(0)
    batch = {"video": (torch.randn(2, 4, 1, 1, 1, generator=g) * 1.5).expand(2, 4, 8, 8, 8).contiguous(),
             "audio": (torch.randn(2, 3, 1, generator=g) * 1.5).expand(2, 3, 32).contiguous(),
             "text": torch.randn(2, 5, 16, generator=g), "null_text": torch.zeros(1, 1, 16)}
    torch.manual_seed(0)
    model = DualStreamModel(tiny_config())
    cfg = fast(lr_fusion=3e-3, lr_towers=3e-3, ema_decay=None)
    trainer = Trainer(model, cfg, device="cpu")

    def held_out_loss():
        total = 0.0
        for s in range(4):
            fb = prepare_batch(batch, cfg, torch.Generator().manual_seed(s), torch.Generator().manual_seed(100 + s))
            with torch.no_grad():
                v, a = model(fb.video, fb.audio, fb.t, fb.t, fb.text, tasks=fb.routes)
            total += flow_loss(v, a, fb, cfg).total.item() / 4
        return total

    before = held_out_loss()
    for _ in range(30):
        trainer.step(batch)
    assert held_out_loss() < 0.6 * before


def test_gradient_checkpointing_gives_the_same_step():
    results = []
    for flag in (False, True):
        model = tiny_model()
        trainer = Trainer(model, fast(gradient_checkpointing=flag), device="cpu")
        assert model.gradient_checkpointing is flag
        assert isinstance(trainer.autocast(), contextlib.nullcontext)  # CPU: weights' dtype, no autocast
        trainer.step(make_batch())
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------- command line
def make_source(rank, world_size):
    return TensorBatches([make_batch(seed=rank + 1)])


def test_command_line(tmp_path):
    from ccl_train.__main__ import main
    run = tmp_path / "cli"
    main(["--run-dir", str(run), "--model", "preset:tiny", "--data", "test_training:make_source",
          "--stage", "joint", "--set", "steps=2", "--set", "warmup_steps=0", "--device", "cpu"])
    assert (run / "checkpoints" / "step-00000002" / "ema.safetensors").exists()
    assert TrainConfig.from_json((run / "train_config.json").read_text()).steps == 2


def test_i2av_rows_start_on_the_still_first_frame_the_batch_gives():
    """Sampling holds an image's latent (the frame held still), not a clip's first two frames: a batch
    with "first_still" gives i2av rows that frame, noised nowhere, and leaves every other row alone."""
    batch = make_batch(size=8)
    batch["first_still"] = torch.randn(batch["video"][:, :, :1].shape, generator=torch.Generator().manual_seed(9))
    cfg = TrainConfig(task_mix={"i2av": 1, "extend": 1, "t2av": 1}, timestep_dist="uniform")
    check_batch(batch, cfg)
    fb = prepare_batch(batch, cfg, torch.Generator().manual_seed(3), torch.Generator().manual_seed(5))
    plain = prepare_batch({k: v for k, v in batch.items() if k != "first_still"}, cfg,
                          torch.Generator().manual_seed(3), torch.Generator().manual_seed(5))
    assert fb.tasks == plain.tasks and {"i2av", "extend", "t2av"} <= set(fb.tasks)
    for i, task in enumerate(fb.tasks):
        if task == "i2av":
            torch.testing.assert_close(fb.video[i, :, :1], batch["first_still"][i])
            torch.testing.assert_close(fb.video[i, :, 1:], plain.video[i, :, 1:])  # the rest: the clip, noised
        else:
            torch.testing.assert_close(fb.video[i], plain.video[i])  # extend's prefix stays the clip's own
    bad = dict(batch, first_still=batch["first_still"][:, :, :, :1])
    with pytest.raises(ValueError, match="first_still must be one still latent frame per clip"):
        check_batch(bad, cfg)


# ---------------------------------------------------------------------- clean prefixes (i2av, extension)
def test_clean_prefixes_are_given_clean_and_left_out_of_the_loss():
    batch = make_batch(size=6)
    cfg = TrainConfig(task_mix={"i2av": 1, "extend": 1, "t2av": 1}, timestep_dist="uniform")
    fb = prepare_batch(batch, cfg, torch.Generator().manual_seed(3), torch.Generator().manual_seed(5))
    assert {"i2av", "extend"} <= set(fb.tasks)
    frames, latents = batch["video"].shape[2], batch["audio"].shape[2]
    for i, task in enumerate(fb.tasks):
        k, a = int(fb.routes.video_prefix[i]), int(fb.routes.audio_prefix[i])
        if task == "i2av":
            assert (k, a) == (1, 0)
        elif task == "extend":
            assert 1 <= k <= frames // 2 and a == k * latents // frames  # the audio of the same span
        else:
            assert (k, a) == (0, 0)
        # held at the clean latent on the prefix, noised after it
        torch.testing.assert_close(fb.video[i, :, :k], batch["video"][i, :, :k])
        assert not torch.allclose(fb.video[i, :, k:], batch["video"][i, :, k:])
        torch.testing.assert_close(fb.audio[i, :, :a], batch["audio"][i, :, :a])
    # a prediction that is wrong only on the prefix costs nothing; wrong after it, it does
    exact = flow_loss(fb.video_target, fb.audio_target, fb, cfg).total
    assert exact.item() == 0
    row = fb.tasks.index("extend")
    k = int(fb.routes.video_prefix[row])
    wrong_prefix = fb.video_target.clone()
    wrong_prefix[row, :, :k] += 10
    assert flow_loss(wrong_prefix, fb.audio_target, fb, cfg).total.item() == 0
    wrong_after = fb.video_target.clone()
    wrong_after[row, :, k:] += 10
    assert flow_loss(wrong_after, fb.audio_target, fb, cfg).total.item() > 0


def test_a_mix_without_prefix_tasks_draws_as_before():
    """Spans are drawn only for extension rows, so every other task mix keeps its random stream."""
    from ccl_core.routing import sample_tasks
    from ccl_train.timesteps import sample_timesteps
    batch = make_batch(size=4)
    for mix, same in (({"t2av": 1, "a2v": 1}, True), ({"extend": 1}, False)):
        cfg = TrainConfig(task_mix=mix)
        used = torch.Generator().manual_seed(3)
        prepare_batch(batch, cfg, used, torch.Generator().manual_seed(5))
        plain = torch.Generator().manual_seed(3)
        sample_tasks(4, plain, cfg.task_mix, cfg.p_null_text, cfg.p_ctx_only)
        sample_timesteps(4, cfg, plain)
        assert torch.equal(torch.rand(8, generator=used), torch.rand(8, generator=plain)) == same
