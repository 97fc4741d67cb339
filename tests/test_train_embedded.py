"""The embedded model's training command: recipe options reach every stage, bad ones fail early."""

import json

import pytest
import torch

from ccl_core import DualStreamModel, tiny_config
from ccl_core.jsonconfig import parse_sets
from ccl_lab import train_embedded
from ccl_lab.train_embedded import train_stages
from ccl_train import TensorBatches
from conftest import tiny_inputs


pytestmark = pytest.mark.usefixtures("one_thread")


def test_set_values_are_json_or_words():
    assert parse_sets(["timestep_shift=3", "schedule=cosine", "grad_clip=null", "train=[\"video\"]"]) == {
        "timestep_shift": 3, "schedule": "cosine", "grad_clip": None, "train": ["video"]}
    with pytest.raises(SystemExit, match="--train-set takes key=value, got 'timestep_shift'"):
        parse_sets(["timestep_shift"], "--train-set")


@pytest.mark.parametrize("option, item, message", [
    ("--train-set", "bogus=1", "unexpected keyword argument 'bogus'"),
    ("--train-set", "timestep_shift=-1", "timestep_shift must be > 0"),
    ("--joint-set", "decay_steps=0", "needs 0 < decay_steps <= steps - warmup_steps \\(9000 - 100\\)"),
    ("--joint-decay", "0.995", "needs 0 < decay_steps <= steps - warmup_steps"),
    ("--joint-set", "schedule=wsd", "needs 0 < decay_steps"),  # a schedule named there drops --joint-decay's
    ("--joint-set", "decay_steps=500", "only used by schedule 'wsd'")])
def test_a_bad_training_field_fails_before_any_data_is_encoded(tmp_path, option, item, message):
    with pytest.raises(SystemExit, match=f"{option}[^:]*: .*{message}") as err:
        train_embedded.main(["--run-dir", str(tmp_path / "run"), option, item]
                            + (["--joint-decay", "0"] if item == "decay_steps=500" else []))
    assert "TrainConfig" in str(err.value)
    assert list((tmp_path / "run").iterdir()) == []  # no latents cache, no stage directory


def test_a_joint_decay_outside_0_1_is_refused(tmp_path):
    with pytest.raises(SystemExit, match=r"--joint-decay: .* must be in \[0, 1\), got -0.1"):
        train_embedded.main(["--run-dir", str(tmp_path / "run"), "--joint-decay", "-0.1"])
    assert list((tmp_path / "run").iterdir()) == []


def test_training_overrides_reach_every_stage_and_win_over_the_recipe(tmp_path):
    torch.manual_seed(0)
    video, audio, _, text = tiny_inputs(4, seed=1)
    data = TensorBatches([{"video": video, "audio": audio, "text": text, "null_text": torch.zeros(1, 2, 16)}])
    train_stages(DualStreamModel(tiny_config()), data, tmp_path, {"video": 2, "audio": 2, "joint": 2}, lr=1e-3,
                 log=lambda m: None, overrides={"mixed_precision": "no", "timestep_shift": 3.0, "lr_towers": 2e-4})
    for stage in ("video", "audio", "joint"):
        cfg = json.loads((tmp_path / f"stage-{stage}" / "train_config.json").read_text())
        assert (cfg["timestep_shift"], cfg["lr_towers"], cfg["lr_fusion"]) == (3.0, 2e-4, 1e-3), stage


def test_stage_times_count_every_sitting_of_a_resumed_run(tmp_path):
    """The exported model records each stage's training time over all sittings, not only the last."""
    torch.manual_seed(0)
    video, audio, _, text = tiny_inputs(4, seed=1)
    data = TensorBatches([{"video": video, "audio": audio, "text": text, "null_text": torch.zeros(1, 2, 16)}])
    model = DualStreamModel(tiny_config())
    kw = dict(lr=1e-3, log=lambda m: None, overrides={"mixed_precision": "no"})
    _, first = train_stages(model, data, tmp_path, {"video": 2, "audio": 2, "joint": 2}, **kw)
    assert sorted(first) == ["audio", "joint", "video"] and min(first.values()) > 0
    trainer, again = train_stages(model, data, tmp_path, {"video": 2, "audio": 2, "joint": 4}, resume=True, **kw)
    assert trainer.step_count == 4
    assert (again["video"], again["audio"]) == (first["video"], first["audio"])  # done: nothing added
    assert again["joint"] > first["joint"]  # the first sitting's two steps plus the two new ones


def test_the_shipped_recipe_trains_at_the_samplers_shift_and_the_recorded_ablation_at_none():
    import argparse
    import inspect
    from ccl_core.generate import generate
    from ccl_lab.train_embedded import add_recipe_arguments, joint_schedule

    shipped, study = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_recipe_arguments(shipped)
    add_recipe_arguments(study, steps_joint=1500, timestep_shift=1.0, lr=5e-4, joint_decay=0.0)
    assert shipped.parse_args([]).timestep_shift == inspect.signature(generate).parameters["shift"].default
    assert (study.parse_args([]).timestep_shift, study.parse_args([]).lr) == (1.0, 5e-4)
    assert joint_schedule(shipped.parse_args([]).joint_decay, 9000) == {"schedule": "wsd", "decay_steps": 2250}
    assert joint_schedule(study.parse_args([]).joint_decay, 1500) == {}  # the study's lr stays constant


def _retrain_commands():
    """The train_embedded commands of scripts/retrain_toyav.sh, each as its list of options."""
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "scripts" / "retrain_toyav.sh").read_text()
    lines = text.replace("\\\n", " ").splitlines()
    return [shlex.split(line.split("ccl_lab.train_embedded", 1)[1]) for line in lines
            if "-m ccl_lab.train_embedded" in line and not line.lstrip().startswith("#")]


def test_the_shipped_model_is_the_retrain_scripts_two_commands():
    """README: scripts/retrain_toyav.sh retrains the shipped model: the default command, then --finish
    from its output. The shipped file's metadata records both recipes (its own, and its --init's)."""
    from safetensors import safe_open

    from ccl_core.assets import ASSETS, MODEL_FILE
    from ccl_lab.train_embedded import parse_args, recipe

    def same(recorded: str, args) -> bool:
        return json.loads(recorded) == json.loads(json.dumps(recipe(args)))

    base, finish = _retrain_commands()
    opts = lambda cmd, name: cmd[cmd.index(name) + 1]  # noqa: E731
    assert "--finish" in finish and opts(finish, "--init") == opts(base, "--out"), finish
    assert recipe(parse_args(base)) == recipe(parse_args([])), "the script's first command is the default recipe"
    with safe_open(str(ASSETS / MODEL_FILE), "pt") as f:
        meta = f.metadata()
    assert same(meta["recipe"], parse_args(finish)), meta["recipe"]
    assert same(json.loads(meta["init"])["recipe"], parse_args([])), meta["init"]


def test_finish_sets_the_fine_tune_defaults_and_needs_a_model():
    from ccl_lab.train_embedded import FINISH, parse_args, recipe

    args = parse_args(["--finish", "--init", "base.safetensors"])
    assert {k: getattr(args, k) for k in FINISH} == FINISH
    assert recipe(args)["joint"]["task_mix"]["i2av"] > 0 and recipe(parse_args([]))["joint"] == {}
    # an option given on the command line still wins over the preset, and the preset leaves the rest alone
    args = parse_args(["--finish", "--init", "base.safetensors", "--steps-joint", "20", "--batch", "8"])
    assert (args.steps_joint, args.batch, args.lr) == (20, 8, FINISH["lr"])
    with pytest.raises(SystemExit, match="--finish fine-tunes a trained model: name it with --init"):
        parse_args(["--finish"])


def test_train_embedded_records_its_recipe():
    from ccl_lab.train_embedded import build_parser, recipe
    args = build_parser().parse_args(["--lr", "2e-3", "--set", "num_layers=2", "--train-set", "ema_decay=0.99",
                                      "--joint-set", "schedule=wsd", "--joint-set", "decay_steps=900",
                                      "--steps-joint", "9000"])
    assert recipe(args) == {"clips": 3000, "batch": 16, "steps_video": 800, "steps_audio": 500, "steps_joint": 9000,
                            "lr": 2e-3, "joint_decay": 0.25, "seed": 0, "model": {"num_layers": 2},
                            "train": {"timestep_shift": 3.0, "ema_decay": 0.99},
                            "joint": {"schedule": "wsd", "decay_steps": 900}}


def test_the_recipe_sweep_scores_only_complete_joint_checkpoints(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / "recipe_sweep.py"
    spec = importlib.util.spec_from_file_location("recipe_sweep", path)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    ckpts = tmp_path / "v" / "stage-joint" / "checkpoints"
    for name in ("step-00000500", "step-00001000", "step-00001500.tmp"):  # 1500: killed while saving
        (ckpts / name).mkdir(parents=True)
    assert sweep.joint_steps(tmp_path / "v") == {500, 1000}
    assert sweep.joint_steps(tmp_path / "missing") == set()


def test_init_from_a_file_written_before_self_attention_windows(tmp_path, capsys):
    """A base written before windows is the same model on its 2 s clips: --init takes it (saying so)
    and the fine-tune gets the command's window; any other difference is still refused."""
    from ccl_core.checkpoint import infer_config, read_header, save_checkpoint
    from ccl_core.toyav.embedded import toyav_config

    old, other = tmp_path / "old.safetensors", tmp_path / "other.safetensors"
    save_checkpoint(DualStreamModel(toyav_config(self_attn_window=None)), old)
    save_checkpoint(DualStreamModel(toyav_config(self_attn_window=None, n_ctx=2)), other)
    run = ["--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out.safetensors"), "--clips", "8",
           "--batch", "8", "--steps-video", "0", "--steps-audio", "0", "--steps-joint", "1", "--threads", "1"]
    train_embedded.main(run + ["--init", str(old)])
    assert "has no self_attn_window (written before windows)" in capsys.readouterr().out
    assert infer_config(read_header(tmp_path / "out.safetensors")).self_attn_window == toyav_config().self_attn_window
    with pytest.raises(SystemExit, match="its config differs from this command's"):
        train_embedded.main(run + ["--init", str(other)])
