"""Workflow files: generated copies in sync, node types known, links typed, widget values valid."""

import glob
import json
import os

import pytest

from pack_loader import ROOT, load_pack, node_classes

import sys
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_workflows  # noqa: E402

pack = load_pack()
OURS = node_classes(pack)
NATIVE = {line.strip() for line in open(os.path.join(ROOT, "tests", "native_nodes.txt"))
          if line.strip() and not line.startswith("#")}
FRONTEND_ONLY = {"Note", "MarkdownNote"}  # UI-only nodes, absent from /object_info
SPECS = make_workflows.all_specs()
# The user's templates (workflows/) and the test-only graphs (tests/fixtures/workflows/), each with api/ twins.
FOLDERS = [os.path.join(ROOT, folder) for folder in make_workflows.FOLDERS]
UI_FILES = sorted(p for folder in FOLDERS for p in glob.glob(os.path.join(folder, "*.json")))
API_FILES = sorted(p for folder in FOLDERS for p in glob.glob(os.path.join(folder, "api", "*.json")))
FILE_LISTS = {"ckpt_name"}  # combos whose options are the user's files


def test_generated_files_are_in_sync():
    rendered = make_workflows.render()
    assert {os.path.relpath(p, ROOT) for p in UI_FILES + API_FILES} == set(rendered)  # no file left over
    for rel, text in rendered.items():
        path = os.path.join(ROOT, rel)
        assert os.path.exists(path), f"{rel} missing: run python tools/make_workflows.py"
        assert open(path).read() == text, f"{rel} is stale: run python tools/make_workflows.py"


def test_native_list_is_plausible():
    assert len(NATIVE) > 400
    for t in ("SamplerCustomAdvanced", "KSamplerSelect", "BasicScheduler", "ModelSamplingSD3", "RandomNoise",
              "CreateVideo", "SaveVideo", "VAELoader", "CLIPLoader", "CLIPTextEncode", "VAEDecodeAudio"):
        assert t in NATIVE
    assert not any(t.startswith("CCL") for t in NATIVE)


def check_value(node_type, name, entry, value):
    kind, opts = entry[0], entry[1] if len(entry) > 1 else {}
    where = f"{node_type}.{name}={value!r}"
    if isinstance(kind, list):
        if name not in FILE_LISTS:
            assert value in kind, where
        return
    if kind == "COMBO":  # a V3 combo (ours and ComfyUI's V3 nodes): the options in the spec
        if name not in FILE_LISTS:
            assert value in opts.get("options", [value]), where
    elif kind == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
    elif kind == "STRING":
        assert isinstance(value, str), where
    if kind in ("INT", "FLOAT"):
        assert opts.get("min", value) <= value <= opts.get("max", value), where


@pytest.mark.parametrize("path", UI_FILES, ids=os.path.basename)
def test_ui_workflow(path):
    wf = json.load(open(path))
    assert wf["version"] == 0.4
    nodes = {n["id"]: n for n in wf["nodes"]}
    for n in wf["nodes"]:
        assert n["type"] in OURS or n["type"] in NATIVE or n["type"] in FRONTEND_ONLY, n["type"]
        for key in ("id", "type", "pos", "size", "flags", "order", "mode", "properties"):
            assert key in n
    for link_id, src, src_slot, dst, dst_slot, ltype in wf["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert out["type"] == ltype == inp["type"], (link_id, out, inp, ltype)
        assert link_id in out["links"] and inp["link"] == link_id
        assert SPECS[nodes[src]["type"]]["output"][src_slot] == ltype
        spec = SPECS[nodes[dst]["type"]]
        section = "required" if inp["name"] in spec["input"]["required"] else "optional"
        expected = make_workflows.input_type(spec["input"][section][inp["name"]])
        assert expected == ltype, (nodes[dst]["type"], inp["name"], expected, ltype)
    # every required socket is connected
    for n in wf["nodes"]:
        if n["type"] in FRONTEND_ONLY:
            continue
        spec = SPECS[n["type"]]
        linked = {i["name"] for i in n["inputs"] if i["link"] is not None}
        for name, entry in spec["input"].get("required", {}).items():
            if make_workflows.input_kind(entry) != "widget":
                assert name in linked, f"{n['type']}.{name} is not connected"


@pytest.mark.parametrize("path", UI_FILES, ids=os.path.basename)
def test_ui_widget_values_fit_our_nodes(path):
    wf = json.load(open(path))
    for n in wf["nodes"]:
        if n["type"] not in OURS:
            continue
        spec = SPECS[n["type"]]
        values = list(n["widgets_values"])
        for section in ("required", "optional"):
            for name in spec["input_order"].get(section, []):
                entry = spec["input"][section][name]
                if make_workflows.input_kind(entry) != "widget":
                    continue
                value = values.pop(0)
                check_value(n["type"], name, entry, value)
        assert values == [], f"{n['type']}: extra widget values {values}"


@pytest.mark.parametrize("path", API_FILES, ids=os.path.basename)
def test_api_workflow(path):
    wf = json.load(open(path))
    ui = json.load(open(os.path.join(os.path.dirname(os.path.dirname(path)), os.path.basename(path))))
    assert {str(n["id"]) for n in ui["nodes"] if n["type"] not in FRONTEND_ONLY} == set(wf)
    for nid, node in wf.items():
        t = node["class_type"]
        assert t in OURS or t in NATIVE, t
        spec = SPECS[t]
        for section in ("required", "optional"):
            for name, entry in spec["input"].get(section, {}).items():
                if name not in node["inputs"]:
                    assert section == "optional", f"{nid} {t}.{name} missing"
                    continue
                value = node["inputs"][name]
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] in wf:
                    src = wf[value[0]]["class_type"]
                    assert SPECS[src]["output"][value[1]] == make_workflows.input_type(entry), (nid, name)
                elif t in OURS:
                    check_value(t, name, entry, value)
    assert any(SPECS[n["class_type"]].get("output_node") for n in wf.values())


LOADED_FILES = {"CCLModelLoader": "ckpt_name", "VAELoader": "vae_name", "CLIPLoader": "clip_name"}


def test_templates_name_only_files_users_can_get():
    """A template (what ComfyUI lists to users) loads the embedded model or files workflows/README.md says
    where to get; graphs that need a file only a test writes are fixtures, outside workflows/."""
    readme = open(os.path.join(ROOT, make_workflows.TEMPLATES, "README.md")).read()
    templates = sorted(glob.glob(os.path.join(ROOT, make_workflows.TEMPLATES, "api", "*.json")))
    assert {os.path.basename(p)[:-5] for p in templates} == set(make_workflows.WORKFLOWS)
    assert not set(make_workflows.TEST_WORKFLOWS) & set(make_workflows.WORKFLOWS)
    for path in templates:
        for node in json.load(open(path)).values():
            name = node["inputs"].get(LOADED_FILES.get(node["class_type"]))
            if name is not None and not name.startswith("(embedded) "):
                assert f"`{name}`" in readme, f"{os.path.basename(path)} loads {name}, which workflows/README.md " \
                                              "does not say where to get"
    smoke = json.load(open(os.path.join(ROOT, make_workflows.FIXTURES, "api", "ccl_tiny_smoke.json")))
    assert any(n["inputs"].get("ckpt_name") == "ccl_tiny_smoke.safetensors" for n in smoke.values())


INPUT_LOADERS = {"LoadAudio": "audio", "LoadVideo": "file", "LoadImage": "image"}  # native nodes reading ComfyUI/input


@pytest.mark.parametrize("path", API_FILES, ids=os.path.basename)
def test_input_files_are_shipped(path):
    """Files named by LoadAudio / LoadVideo / LoadImage are in workflows/inputs (artists copy them to
    ComfyUI/input), small, and the prompt of a ToyAV task workflow describes its input clip. The one exception
    is ComfyUI's own input/example.png, which the Ovi image workflow starts from."""
    import make_toyav_inputs

    wf = json.load(open(path))
    for node in wf.values():
        widget = INPUT_LOADERS.get(node["class_type"])
        if widget is None:
            continue
        name = node["inputs"][widget]
        if name == make_workflows.COMFY_EXAMPLE_IMAGE:
            assert node["class_type"] == "LoadImage" and os.path.basename(path).startswith("ovi_"), path
            continue
        local = os.path.join(ROOT, "workflows", "inputs", name)
        assert os.path.isfile(local), f"{name} is not in workflows/inputs (python tools/make_toyav_inputs.py)"
        assert os.path.getsize(local) < 200_000
        prompts = [n["inputs"]["text"] for n in wf.values() if n["class_type"] == "CCLToyAVTextEncode"]
        if name in make_toyav_inputs.CLIPS:
            assert make_toyav_inputs.prompt_of(name) in prompts, (name, prompts)


def test_new_task_workflows_use_their_nodes():
    """toyav_i2av / ovi_i2av start from Load Image through the i2av task node; toyav_extend chains CCL Extend and
    CCL Append Window into one clip of 10 s (the windows' lengths less their overlaps) that one saver writes."""
    for name in ("toyav_i2av", "ovi_i2av"):
        wf = json.load(open(os.path.join(ROOT, "workflows", "api", name + ".json")))
        (task,) = [n for n in wf.values() if n["class_type"] == "CCLImageToVideo"]
        assert wf[task["inputs"]["image"][0]]["class_type"] == "LoadImage"
        sampler = next(n for n in wf.values() if n["class_type"] == "SamplerCustomAdvanced")
        assert wf[sampler["inputs"]["latent_image"][0]] is task
    wf = json.load(open(os.path.join(ROOT, "workflows", "api", "toyav_extend.json")))
    extends = [n for n in wf.values() if n["class_type"] == "CCLExtend"]
    appends = [k for k, n in wf.items() if n["class_type"] == "CCLAppendWindow"]
    empty = next(n for n in wf.values() if n["class_type"] == "CCLEmptyJointLatent")
    seconds = empty["inputs"]["seconds"] + sum(n["inputs"]["seconds"] - n["inputs"]["overlap_seconds"] for n in extends)
    assert len(extends) == len(appends) == 4 and seconds == 10.0
    # each window extends the clip the previous Append made, and the decoder reads the last one
    for i, n in enumerate(extends[1:]):
        assert n["inputs"]["latent"][0] == appends[i]
    (decode,) = [n for n in wf.values() if n["class_type"] == "CCLDecode"]
    assert decode["inputs"]["latent"][0] == appends[-1]
    assert len([n for n in wf.values() if n["class_type"] == "CCLSaveVideo"]) == 1
