"""The embedded model's training command: recipe options reach every stage, bad ones fail early."""

import json

import pytest
import torch

from ccl_core import DualStreamModel, tiny_config
from ccl_core.toyav import train_embedded
from ccl_core.jsonconfig import parse_sets
from ccl_core.toyav.train_embedded import train_stages
from ccl_core.training import TensorBatches
from conftest import tiny_inputs


pytestmark = pytest.mark.usefixtures("one_thread")


def test_set_values_are_json_or_words():
    assert parse_sets(["timestep_shift=3", "schedule=cosine", "grad_clip=null", "train=[\"video\"]"]) == {
        "timestep_shift": 3, "schedule": "cosine", "grad_clip": None, "train": ["video"]}
    with pytest.raises(SystemExit, match="--train-set takes key=value, got 'timestep_shift'"):
        parse_sets(["timestep_shift"], "--train-set")


@pytest.mark.parametrize("item, message", [("bogus=1", "unexpected keyword argument 'bogus'"),
                                           ("timestep_shift=-1", "timestep_shift must be > 0")])
def test_a_bad_training_field_fails_before_any_data_is_encoded(tmp_path, item, message):
    with pytest.raises(SystemExit, match=message) as err:
        train_embedded.main(["--run-dir", str(tmp_path / "run"), "--train-set", item])
    assert "TrainConfig" in str(err.value)
    assert list((tmp_path / "run").iterdir()) == []  # no latents cache, no stage directory


def test_training_overrides_reach_every_stage_and_win_over_the_recipe(tmp_path):
    torch.manual_seed(0)
    video, audio, _, text = tiny_inputs(4, seed=1)
    data = TensorBatches([{"video": video, "audio": audio, "text": text, "null_text": torch.zeros(1, 2, 16)}])
    train_stages(DualStreamModel(tiny_config()), data, tmp_path, {"video": 2, "audio": 2, "joint": 2}, lr=1e-3,
                 log=lambda m: None, overrides={"mixed_precision": "no", "timestep_shift": 3.0, "lr_towers": 2e-4})
    for stage in ("video", "audio", "joint"):
        cfg = json.loads((tmp_path / f"stage-{stage}" / "train_config.json").read_text())
        assert (cfg["timestep_shift"], cfg["lr_towers"], cfg["lr_fusion"]) == (3.0, 2e-4, 1e-3), stage


def test_the_shipped_recipe_trains_at_the_samplers_shift_and_the_recorded_ablation_at_none():
    import argparse
    import inspect
    from ccl_core.generate import generate
    from ccl_core.toyav.train_embedded import add_recipe_arguments

    shipped, study = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_recipe_arguments(shipped)
    add_recipe_arguments(study, steps_joint=1500, timestep_shift=1.0)
    assert shipped.parse_args([]).timestep_shift == inspect.signature(generate).parameters["shift"].default
    assert study.parse_args([]).timestep_shift == 1.0


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
