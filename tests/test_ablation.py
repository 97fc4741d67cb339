"""The ablation study's parts: one switch per variant, staged training, loss curves, the report."""

import json
import xml.etree.ElementTree as ET

import pytest
import torch

from ccl_core import DualStreamModel, tiny_config
from ccl_core.toyav.embedded import toyav_config
from ccl_lab import ablation
from ccl_lab.metrics import summarize_by_seed
from ccl_lab.train_embedded import train_stages
from ccl_train import TensorBatches, stage_config
from conftest import tiny_inputs


pytestmark = pytest.mark.usefixtures("one_thread")


def test_each_variant_changes_only_what_it_names():
    base_model, base_joint = toyav_config().to_dict(), stage_config("joint").to_dict()
    expected = {
        "gated": ({"fusion", "n_ctx", "tarp_window"}, set()),
        "ccl": (set(), set()),
        "no_partition": ({"tarp_window"}, set()),
        "no_aligned_rope": ({"aligned_rope"}, set()),
        "no_ctx": ({"n_ctx"}, set()),
        "no_dcr": (set(), {"task_mix", "p_ctx_only"}),
    }
    assert set(ablation.VARIANTS) == set(expected)
    for name, variant in ablation.VARIANTS.items():
        model = toyav_config(**variant.model).to_dict()
        joint = stage_config("joint", **variant.joint).to_dict()
        changed_model = {k for k in model if model[k] != base_model[k]}
        changed_joint = {k for k in joint if joint[k] != base_joint[k]}
        assert (changed_model, changed_joint) == expected[name], name
    gated = toyav_config(**ablation.VARIANTS["gated"].model)
    assert (gated.fusion, gated.n_ctx, gated.tarp_window) == ("gated", 0, None)
    no_dcr = stage_config("joint", **ablation.VARIANTS["no_dcr"].joint)
    assert no_dcr.task_mix == {"t2av": 1.0} and no_dcr.p_ctx_only == 0.0 and no_dcr.p_null_text > 0


def test_rows_compare_every_variant_and_every_guidance_form():
    rows = set(ablation.ROWS)
    assert len(rows) == len(ablation.ROWS)
    for name in ablation.VARIANTS:
        assert (name, "ucg_joint") in rows
    assert {g for v, g in rows if v == "ccl"} == {"ucg_joint", "ucg_decoupled", "cfg", "ovi"}
    assert ablation.GUIDANCE["ovi"].skip_block < toyav_config().num_layers
    forms = {g: ablation.GUIDANCE[g].form for g in ablation.GUIDANCE}
    assert forms == {"ucg_joint": "joint", "cfg": "cfg", "ucg_decoupled": "decoupled", "ovi": "ovi"}


def test_staged_training_writes_the_stages_checkpoints_and_loss_curve(tmp_path):
    torch.manual_seed(0)
    model = DualStreamModel(tiny_config())
    video, audio, _, text = tiny_inputs(4, seed=1)
    data = TensorBatches([{"video": video, "audio": audio, "text": text, "null_text": torch.zeros(1, 2, 16)}])
    messages = []
    train_stages(model, data, tmp_path / "ccl", {"video": 2, "audio": 2, "joint": 20}, lr=1e-3, save_every=10,
                 keep_checkpoints=0, log=messages.append, joint={"task_mix": {"t2av": 1.0}},
                 overrides={"mixed_precision": "no"})
    assert sorted(p.name for p in (tmp_path / "ccl").iterdir()) == ["stage-audio", "stage-joint", "stage-video"]
    assert sorted(ablation.joint_checkpoints(tmp_path, "ccl")) == [10, 20]
    cfg = json.loads((tmp_path / "ccl" / "stage-joint" / "train_config.json").read_text())
    assert cfg["task_mix"] == {"t2av": 1.0} and cfg["mixed_precision"] == "no"
    assert json.loads((tmp_path / "ccl" / "stage-video" / "train_config.json").read_text())["task_mix"] == {"t2v": 1.0}
    curve = ablation.joint_loss(tmp_path, "ccl")
    assert [s for s, _ in curve] == [10, 20] and all(v > 0 for _, v in curve)
    assert any("[joint] done" in m for m in messages)


def test_spread_is_the_deviation_of_the_per_seed_scores():
    def clip(offset, recall):
        return {"offsets_ms": [offset], "recall": recall, "precision": 1.0, "colour_ok": True, "pitch_ok": True,
                "motion_ok": recall > 0.5}

    summary = summarize_by_seed([[clip(10, 1.0), clip(30, 1.0)], [clip(50, 0.0), clip(70, 0.0)]])
    assert summary["all"]["clips"] == 4
    assert summary["all"]["median_offset_ms"] == 40
    assert [s["recall"] for s in summary["per_seed"]] == [1.0, 0.0]
    assert summary["spread_across_seeds"]["recall"] == 0.5
    assert summary["spread_across_seeds"]["median_offset_ms"] == 20
    assert summary["spread_across_seeds"]["colour_accuracy"] == 0


def test_report_tables_and_plot(tmp_path):
    scores = summarize_by_seed([[{"offsets_ms": [12.0], "recall": 1.0, "precision": 0.5, "colour_ok": True,
                                         "pitch_ok": False, "motion_ok": True}]])
    (tmp_path / "gated" / "stage-joint").mkdir(parents=True)
    (tmp_path / "gated" / "stage-joint" / "losses.csv").write_text(
        "step,task,stream,loss,count,lr,lr_towers,grad_norm,elapsed,smoothed\n"
        "10,t2av,video,0.5,2,1,1,1,1,0.4\n10,t2av,audio,0.3,2,1,1,1,1,0.2\n10,a2v,video,9,1,1,1,1,1,9\n"
        "20,t2av,video,0.4,2,1,1,1,1,0.3\n20,t2av,audio,0.2,2,1,1,1,1,0.1\n")
    results = {"variants": {"gated": "x", "ccl": "y"},
               "rows": [{"variant": "gated", "guidance": "cfg", "step": 20, "scores": scores}],
               "curve": [{"variant": "gated", "step": 20, "scores": scores}]}
    report = ablation.write_report(tmp_path, results, tmp_path / "out")
    assert sorted(p.name for p in report.iterdir()) == ["joint_loss.csv", "joint_loss.svg", "results.json",
                                                        "table.csv", "table.md"]
    md = (report / "table.md").read_text()
    assert "| gated | cfg | 12 (0) | 1.00 (0.00) | 0.50 (0.00) | 1.00 (0.00) | 0.00 (0.00) | 1.00 (0.00) |" in md
    assert "| gated | 20 | 12 |" in md
    rows = (report / "joint_loss.csv").read_text().splitlines()
    assert rows == ["variant,step,t2av_loss_ema", "gated,10,0.6", "gated,20,0.4"]
    svg = ET.fromstring((report / "joint_loss.svg").read_text())
    lines = [e for e in svg.iter() if e.tag.endswith("polyline")]
    assert len(lines) == 1  # ccl has no loss log: no line rather than an empty one
    assert len(lines[0].get("points").split()) == 2


def test_worker_arguments_round_trip():
    import argparse
    ns = argparse.Namespace(run_dir="r", device="cuda", clips=10, batch=4, steps_video=1, steps_audio=2,
                            steps_joint=3, lr=0.5, timestep_shift=2.0, seed=7, save_every=5)
    flat = ablation._worker_args(ns, threads=3)
    assert flat[flat.index("--threads") + 1] == "3"
    for key, value in vars(ns).items():
        assert flat[flat.index("--" + key.replace("_", "-")) + 1] == str(value)
    with pytest.raises(SystemExit, match="unknown variants"):
        ablation.main(["--run-dir", "unused", "--variants", "ccl,nope"])


def test_plot_ticks_are_round_and_cover_the_range():
    assert ablation._ticks(0, 1560) == [0, 200, 400, 600, 800, 1000, 1200, 1400]
    assert ablation._ticks(0.31, 1.03) == [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert ablation._ticks(0.5, 0.5) == [0.5]


def test_variants_start_from_the_shared_towers_with_fresh_fusion(tmp_path):
    from safetensors.torch import save_file
    torch.manual_seed(1)
    towers_model = DualStreamModel(tiny_config(**ablation.TOWER_MODEL))
    names = ablation.tower_names(towers_model)
    assert names and not any("fusion" in n or "ctx_" in n for n in names)
    state = towers_model.state_dict()
    save_file({n: state[n] for n in names}, str(tmp_path / "towers.safetensors"))
    torch.manual_seed(2)
    ccl = DualStreamModel(tiny_config())
    fresh = {n: p.clone() for n, p in ccl.state_dict().items()}
    ablation.load_towers(ccl, tmp_path / "towers.safetensors")
    after = ccl.state_dict()
    for n in after:
        if n in names:
            assert torch.equal(after[n], state[n]), n
        else:  # the cross-modal parts keep the variant's own initialisation
            assert torch.equal(after[n], fresh[n]), n
    assert any(n not in names for n in after)
    save_file({n: state[n] for n in names[1:]}, str(tmp_path / "short.safetensors"))
    with pytest.raises(ValueError, match="missing"):
        ablation.load_towers(ccl, tmp_path / "short.safetensors")


def test_crossmodal_table_reports_the_gain_from_the_other_stream(tmp_path):
    losses = {"t2v": {"video": 0.5}, "a2v": {"video": 0.4}, "t2a": {"audio": 0.3}, "v2a": {"audio": 0.1},
              "t2av": {"video": 0.45, "audio": 0.2}}
    md = ablation.crossmodal_table({"ccl": {"validation_loss": losses,
                                            "v2a": {"median_offset_ms": 12.0, "recall": 0.9, "precision": 0.8}}},
                                   tmp_path / "c.csv")
    assert md[-1] == ("| ccl | 0.5000 -> 0.4000 (+0.1000) | 0.3000 -> 0.1000 (+0.2000) | 0.4500 / 0.2000 | 12 "
                      "| 0.90 | 0.80 |")
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert rows[1] == "ccl,0.5,0.4,0.3,0.1,0.45,0.2,12.0,0.9,0.8"
