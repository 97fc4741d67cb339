"""The embedded model as a native model in a real ComfyUI (skipped unless COMFYUI_PATH is set).

    COMFYUI_PATH=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/its/python pytest tests/test_comfy_native_real.py

Runs tests/comfy_native_check.py with ComfyUI's Python, once with ComfyUI's default attention and once
with --use-pytorch-cross-attention: the native sampling path equals ccl_core, LoraLoaderModelOnly
patches the model in three key formats exactly as merging by hand, partial (lowvram) loading keeps
the result, block swap keeps it, and the launch flag picks the attention kernel the model runs
through; a scaled-fp8 file loaded by the CCL Model Loader stays fp8 in this ComfyUI's own fp8 ops and
gives the step of the file dequantized by hand, with LoRA, lowvram and block swap. With
CCL_CHECK_COMPILE=1 it also compiles the model with TorchCompileModel's wrapper
(inductor) and checks the compiled output: 8 minutes on a 2-core CPU, hence opt-in.
"""

import json
import os
import subprocess
import sys

import pytest

from pack_loader import ROOT

COMFY = os.environ.get("COMFYUI_PATH")
pytestmark = pytest.mark.skipif(not COMFY, reason="COMFYUI_PATH is not set")
MODEL = os.path.join(ROOT, "ccl_core", "assets", "toyav_ccl.safetensors")


def _run(tmp_path, *flags):
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    out = tmp_path / "native.json"
    run = subprocess.run([python, os.path.join(ROOT, "tests", "comfy_native_check.py"), str(out), *flags],
                         capture_output=True, text=True, timeout=900, env={**os.environ, "COMFYUI_PATH": COMFY},
                         cwd=str(tmp_path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.skipif(not os.path.exists(MODEL), reason="the embedded model is not installed")
@pytest.mark.parametrize("flags,kernel", [((), None), (("--use-pytorch-cross-attention",), "attention_pytorch")])
def test_native_model_lora_lowvram_and_attention(tmp_path, flags, kernel):
    res = _run(tmp_path, *flags)
    # every attention ran through ComfyUI's dispatcher: 3 per tower and block pair
    assert res["attention"]["calls"] == 2 * res["attention"]["blocks"] * 3, res["attention"]
    if kernel:
        assert res["attention"]["dispatcher"] == kernel, res["attention"]
    assert res["parity_max_abs_diff"] < 1e-5, res
    for name in ("kohya", "lora_unet", "peft"):
        assert res["lora"][name]["patched_keys"] == 4, (name, res["lora"])
        assert res["lora"][name]["max_abs_diff"] < 1e-5, (name, res["lora"])
    if not os.path.isdir(os.path.join(COMFY, "comfy", "cmd")):
        # the patches leave the base model as it was; "ComfyUI LTS" 0.12.1 copies a patcher's memory
        # records into each clone (upstream shares them), so there the base model used after its LoRA
        # clone in one process keeps the LoRA: that build's behaviour for every model, not the pack's
        assert res["lora"]["base_after"] < 1e-5, res["lora"]
    lv = res["lowvram"]
    assert lv["cast_per_call"] > 0.8 * lv["layers"] and lv["max_abs_diff"] < 1e-5, lv
    if "compile" in res:  # CCL_CHECK_COMPILE=1: TorchCompileModel's wrapper (inductor; minutes on a CPU)
        assert res["compile"]["max_abs_diff"] < 1e-5 and res["compile"]["again_max_abs_diff"] < 1e-5, res["compile"]
    bs = res["block_swap"]  # all but the first block pair cast per call, LoRA kept
    assert bs["switched"] > 0 and bs["max_abs_diff"] < 1e-5, bs
    fp8 = res["scaled_fp8"]  # a scaled-fp8 file kept in fp8 by this ComfyUI's own ops (feature-detected)
    assert fp8["route"] in ("scaled_fp8", "mixed_precision"), fp8
    assert fp8["route"] + "_ops" in fp8["ops"] and fp8["weight"] == "torch.float8_e4m3fn", fp8
    assert fp8["parity"] < 1e-5, fp8  # the step of the same file dequantized by hand
    lora, bound = fp8["lora"], fp8["quant_error"]  # bound: the file's own fp8 rounding, at the output
    # LoRA on fp8 weights re-rounds the patched layers: nearer the merged weights than one rounding of all
    assert lora["patched_keys"] == 4 and lora["max_abs_diff"] < bound and lora["from_base"] > 0.5 * lora["effect"], fp8
    lv = fp8["lowvram"]
    assert lv["cast_per_call"] > 0.8 * lv["layers"] and lv["max_abs_diff"] < bound, fp8
    assert fp8["block_swap"]["switched"] > 0 and fp8["block_swap"]["vs_full_load"] < 1e-5, fp8
