"""Writes the pack's workflows from one definition: UI format, API format and the template copies.

    python tools/make_workflows.py                 # workflows/*.json (UI) and workflows/api/*.json (API),
                                                   # and the test-only ones in tests/fixtures/workflows/
    python tools/make_workflows.py --check         # exit 1 if a committed file differs from what it would write
    python tools/make_workflows.py --native FILE_OR_URL
        # refresh tests/native_nodes.txt and tests/native_node_specs.json from a real ComfyUI's /object_info
        # (a saved JSON file or e.g. http://127.0.0.1:8188/object_info)

ComfyUI 0.3.68 lists a pack's templates from any of example_workflows/, example/, examples/, workflow/
and workflows/ (app/custom_node_manager.py, GET /workflow_templates), so the UI files live in
workflows/ only: a second copy in example_workflows/ would list every template twice. The API twins
(for POST /prompt) are in workflows/api/, which the template listing does not read. Graphs only the tests
can run (ccl_tiny_smoke needs a checkpoint the test writes) go to tests/fixtures/workflows/ instead, so
users are never offered them. All are generated here, so they cannot diverge; tests/test_workflows.py
checks the committed files equal this output.
Node specs come from the pack itself (loaded against tests/comfy_stub) and, for native nodes, from
tests/native_node_specs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)
from ccl_core.ovi import OVI_AUDIO_NEGATIVE, OVI_VIDEO_NEGATIVE  # noqa: E402  (Ovi's defaults, one place)
NATIVE_TXT = os.path.join(ROOT, "tests", "native_nodes.txt")
NATIVE_SPECS = os.path.join(ROOT, "tests", "native_node_specs.json")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

OVI_PROMPT = ("A young woman with curly hair sits at a piano in a sunlit room and sings, looking at the camera: "
              "<S>The morning light is all I need.<E> "
              "<AUDCAP>Clear female singing voice with soft piano accompaniment, small room ambience.<ENDAUDCAP>")

TOYAV_INPUTS = "workflows/inputs"  # shipped input files; LoadAudio / LoadVideo read them from ComfyUI/input
TOYAV_A2V_AUDIO = "ccl_toyav_a2v_input.wav"  # made by tools/make_toyav_inputs.py: "a blue square bouncing"
TOYAV_V2A_VIDEO = "ccl_toyav_v2a_input.mp4"  # "a yellow triangle sliding"
TOYAV_I2AV_IMAGE = "ccl_toyav_i2av_input.png"  # the first frame of "a green circle bouncing"
COMFY_EXAMPLE_IMAGE = "example.png"  # the image ComfyUI ships in its input/ folder (LoadImage's default)
TOYAV_NOTES = (
    "The embedded ToyAV model (shipped inside the pack: 64x64, 16 fps, 2 s, 16 kHz; prompts 'a {colour} {shape} "
    "{motion}' with colours red green blue yellow, shapes circle square triangle, motions bouncing sliding "
    "blinking). No download needed. The negative is the empty prompt, i.e. the null text of UCG. Sampling: "
    "dpmpp_2m, 25 steps, shift 3 (what ccl_core.generate uses).")


def toyav_workflow(task, prompt, prefix, seed):
    """ToyAV graph: t2av, or a2v / v2a with a task node fed by a shipped input file."""
    nodes = [
        (1, "CCLModelLoader", {"ckpt_name": "(embedded) toyav_ccl", "weight_dtype": "default", "resident_blocks": -1},
         {}, None),
        (2, "ModelSamplingSD3", {"shift": 3.0}, {"model": (1, 0)}, None),
        (3, "CCLToyAVTextEncoderLoader", {"encoder_name": "(embedded) toyav_text"}, {}, None),
        (4, "CCLToyAVTextEncode", {"text": prompt}, {"text_encoder": (3, 0)}, "Prompt: a {colour} {shape} {motion}"),
        (5, "CCLToyAVTextEncode", {"text": ""}, {"text_encoder": (3, 0)}, "Negative: empty prompt = null text"),
        (6, "CCLEmptyJointLatent", {"width": 64, "height": 64, "seconds": 2.0, "batch_size": 1},
         {"model": (2, 0)}, None),
        (7, "CCLToyAVAutoencoderLoader", {"video_ae": "(embedded) toyav_video_ae",
                                          "audio_ae": "(embedded) toyav_audio_ae"}, {}, None),
    ]
    pos, neg, lat = (4, 0), (5, 0), (6, 0)
    if task == "a2v":
        nodes += [
            (8, "LoadAudio", {"audio": TOYAV_A2V_AUDIO}, {}, "Load Audio (copy workflows/inputs/* to ComfyUI/input)"),
            (9, "CCLAudioToVideo", {}, {"positive": pos, "latent": lat, "audio_vae": (7, 1), "audio": (8, 0),
                                        "negative": neg}, None),
        ]
        pos, neg, lat = (9, 0), (9, 1), (9, 2)
    elif task == "v2a":
        nodes += [
            (8, "LoadVideo", {"file": TOYAV_V2A_VIDEO}, {}, "Load Video (copy workflows/inputs/* to ComfyUI/input)"),
            (9, "GetVideoComponents", {}, {"video": (8, 0)}, None),
            (10, "CCLVideoToAudio", {"fps": 16.0}, {"positive": pos, "latent": lat, "video_vae": (7, 0),
                                                    "images": (9, 0), "fps": (9, 2), "negative": neg}, None),
        ]
        pos, neg, lat = (10, 0), (10, 1), (10, 2)
    elif task == "i2av":
        nodes += [
            (8, "LoadImage", {"image": TOYAV_I2AV_IMAGE}, {}, "Load Image (copy workflows/inputs/* to ComfyUI/input)"),
            (9, "CCLImageToVideo", {}, {"positive": pos, "latent": lat, "video_vae": (7, 0), "image": (8, 0),
                                        "negative": neg}, None),
        ]
        pos, neg, lat = (9, 0), (9, 1), (9, 2)
    n = nodes[-1][0]
    nodes += sampled(n + 1, (2, 0), pos, neg, lat, seed)
    nodes += [
        (n + 6, "CCLDecode", {}, {"latent": (n + 5, 0), "video_vae": (7, 0), "audio_vae": (7, 1)}, None),
        (n + 7, "CCLCreateVideo", {"fps": 16.0}, {"images": (n + 6, 0), "fps": (n + 6, 2), "audio": (n + 6, 1)},
         None),
        (n + 8, "CCLSaveVideo", {"filename_prefix": prefix, "crf": 19}, {"video": (n + 7, 0)}, None),
    ]
    return nodes


def sampled(n, model, pos, neg, lat, seed):
    """Nodes n.. that sample one joint latent with the joint UCG guider (the ToyAV settings); the output is
    (n + 4, 0)."""
    return [
        (n, "CCLGuider", {"form": "joint", "video_scale": 3.0, "audio_scale": 3.0, "video_av_scale": 2.0,
                          "audio_av_scale": 2.0, "skip_block": 2}, {"model": model, "positive": pos, "negative": neg},
         None),
        (n + 1, "KSamplerSelect", {"sampler_name": "dpmpp_2m"}, {}, None),
        (n + 2, "BasicScheduler", {"scheduler": "simple", "steps": 25, "denoise": 1.0}, {"model": model}, None),
        (n + 3, "RandomNoise", {"noise_seed": seed}, {}, None),
        (n + 4, "SamplerCustomAdvanced", {}, {"noise": (n + 3, 0), "guider": (n, 0), "sampler": (n + 1, 0),
                                              "sigmas": (n + 2, 0), "latent_image": lat}, None),
    ]


EXTEND_WINDOWS = 5  # toyav_extend: a 2 s first window and four 2.5 s windows overlapping by 0.5 s: 10 s
EXTEND_SECONDS, EXTEND_OVERLAP = 2.5, 0.5


def toyav_extend_workflow(prompt, prefix, seed):
    """ToyAV t2av for the first window, then CCL Extend -> sampler -> CCL Append Window for each next one."""
    nodes = toyav_workflow("t2av", prompt, prefix, seed)
    decode = next(i for i, node in enumerate(nodes) if node[1] == "CCLDecode")
    head, tail = nodes[:decode], nodes[decode:]
    clip = (head[-1][0], 0)  # window 1's sampler
    n = max(node[0] for node in nodes) + 1
    for w in range(1, EXTEND_WINDOWS):
        head.append((n, "CCLExtend", {"overlap_seconds": EXTEND_OVERLAP, "seconds": EXTEND_SECONDS},
                     {"positive": (4, 0), "latent": clip, "negative": (5, 0)}, f"Extend: window {w + 1}"))
        head += sampled(n + 1, (2, 0), (n, 0), (n, 1), (n, 2), seed + w)
        head.append((n + 6, "CCLAppendWindow", {}, {"clip": clip, "window": (n + 5, 0)}, None))
        clip, n = (n + 6, 0), n + 7
    decoder = tail[0]
    tail[0] = (decoder[0], decoder[1], decoder[2], {**decoder[3], "latent": clip}, decoder[4])
    return head + tail


OVI_FILES = ("models/ccl/model.safetensors (or models/diffusion_models), "
             "models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors, models/vae/wan2.2_vae.safetensors, "
             "models/vae/mmaudio_vae_16k.safetensors (see workflows/README.md).")
OVI_I2AV_PROMPT = ("The picture comes to life: the camera slowly pushes in while a woman off screen says: "
                   "<S>Look how the light changes here.<E> "
                   "<AUDCAP>Calm female voice, soft room tone, light breeze.<ENDAUDCAP>")


def ovi_workflow(task, prompt, prefix):
    """Ovi graph: t2av, or i2av with Load Image and the image task node."""
    nodes = [
        (1, "CCLModelLoader", {"ckpt_name": "model.safetensors", "weight_dtype": "default", "resident_blocks": -1},
         {}, None),
        (2, "ModelSamplingSD3", {"shift": 5.0}, {"model": (1, 0)}, None),
        (3, "CLIPLoader", {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan",
                           "device": "default"}, {}, None),
        (4, "CLIPTextEncode", {"text": prompt}, {"clip": (3, 0)}, "Prompt (speech in <S>..<E>, sound in <AUDCAP>..<ENDAUDCAP>)"),
        (5, "CLIPTextEncode", {"text": OVI_VIDEO_NEGATIVE}, {"clip": (3, 0)}, "Video negative prompt"),
        (17, "CLIPTextEncode", {"text": OVI_AUDIO_NEGATIVE}, {"clip": (3, 0)}, "Audio negative prompt"),
        (6, "CCLEmptyJointLatent", {"width": 704, "height": 704, "seconds": 5.0, "batch_size": 1},
         {"model": (2, 0)}, None),
    ]
    pos, neg, lat = (4, 0), (5, 0), (6, 0)
    if task == "i2av":
        nodes += [
            (19, "LoadImage", {"image": COMFY_EXAMPLE_IMAGE}, {}, "Load Image (the first frame)"),
            (18, "CCLImageToVideo", {}, {"positive": pos, "latent": lat, "video_vae": (12, 0), "image": (19, 0),
                                         "negative": neg}, None),
        ]
        pos, neg, lat = (18, 0), (18, 1), (18, 2)
    nodes += [
        (7, "CCLGuider", {"form": "ovi", "video_scale": 4.0, "audio_scale": 3.0, "video_av_scale": 2.0,
                          "audio_av_scale": 2.0, "skip_block": 11},
         {"model": (2, 0), "positive": pos, "negative": neg, "negative_audio": (17, 0)}, None),
        (8, "KSamplerSelect", {"sampler_name": "uni_pc"}, {}, None),
        (9, "BasicScheduler", {"scheduler": "simple", "steps": 50, "denoise": 1.0}, {"model": (2, 0)}, None),
        (10, "RandomNoise", {"noise_seed": 103}, {}, None),
        (11, "SamplerCustomAdvanced", {}, {"noise": (10, 0), "guider": (7, 0), "sampler": (8, 0),
                                           "sigmas": (9, 0), "latent_image": lat}, None),
        (12, "VAELoader", {"vae_name": "wan2.2_vae.safetensors"}, {}, "Video VAE (Wan 2.2)"),
        (13, "VAELoader", {"vae_name": "mmaudio_vae_16k.safetensors"}, {}, "Audio VAE (MMAudio 16 kHz)"),
        (14, "CCLDecode", {}, {"latent": (11, 0), "video_vae": (12, 0), "audio_vae": (13, 0)}, None),
        (15, "CCLCreateVideo", {"fps": 24.0}, {"images": (14, 0), "fps": (14, 2), "audio": (14, 1)}, None),
        (16, "CCLSaveVideo", {"filename_prefix": prefix, "crf": 19}, {"video": (15, 0)}, None),
    ]
    return nodes


# name -> (title, notes, [(id, type, widgets {name: value}, links {input: (src id, src slot)}, title)])
WORKFLOWS = {
    "ovi_t2av": (
        "Ovi: text to video with sound",
        "Ovi 11B (model.safetensors: 720x720, 5 s) through the CCL pack with native samplers. Files: " + OVI_FILES,
        ovi_workflow("t2av", OVI_PROMPT, "video/Ovi"),
    ),
    "ovi_i2av": (
        "Ovi: image to video with sound",
        "Ovi 11B (model.safetensors: 720x720, 5 s) from a first frame: CCL Task: Image to Video+Audio fits the "
        "image to the video (centre crop) and holds it as the clean first latent frame, as Ovi's own i2v. "
        f"Load Image reads {COMFY_EXAMPLE_IMAGE} from ComfyUI/input; pick your image and describe what happens "
        "after it in the prompt. Files: " + OVI_FILES,
        ovi_workflow("i2av", OVI_I2AV_PROMPT, "video/Ovi_i2av"),
    ),
    "toyav_t2av": (
        "ToyAV: text to video with sound (embedded model)",
        TOYAV_NOTES + " Joint UCG with video and audio scales 3.",
        toyav_workflow("t2av", "a red circle bouncing", "video/toyav_t2av", 0),
    ),
    "toyav_a2v": (
        "ToyAV: audio to video (embedded model)",
        TOYAV_NOTES + f" Input: {TOYAV_INPUTS}/{TOYAV_A2V_AUDIO} (a blue square bouncing: its pitch and bounces); "
        "copy it into ComfyUI/input first, or pick your own sound (resampled to 16 kHz mono, cut or padded to 2 s). "
        "The video is generated in time with the sound.",
        toyav_workflow("a2v", "a blue square bouncing", "video/toyav_a2v", 0),
    ),
    "toyav_v2a": (
        "ToyAV: video to audio (embedded model)",
        TOYAV_NOTES + f" Input: {TOYAV_INPUTS}/{TOYAV_V2A_VIDEO} (a yellow triangle sliding); copy it into "
        "ComfyUI/input first, or pick your own clip (resampled to 16 fps and 64x64, cut or padded to 2 s). The sound "
        "is generated for the frames (its own soundtrack is ignored).",
        toyav_workflow("v2a", "a yellow triangle sliding", "video/toyav_v2a", 0),
    ),
    "toyav_i2av": (
        "ToyAV: image to video with sound (embedded model)",
        TOYAV_NOTES + f" Input: {TOYAV_INPUTS}/{TOYAV_I2AV_IMAGE} (the first frame of a green circle bouncing); copy "
        "it into ComfyUI/input first, or pick your own image (scaled to cover 64x64 and centre-cropped). The clip "
        "starts on the image; the rest of the video and the sound are generated.",
        toyav_workflow("i2av", "a green circle bouncing", "video/toyav_i2av", 0),
    ),
    "toyav_extend": (
        "ToyAV: a 10 s clip in 5 windows (embedded model)",
        TOYAV_NOTES + f" Window 1 is text to video with sound (2 s); each next window (CCL Extend, {EXTEND_SECONDS:g} s) "
        f"starts {EXTEND_OVERLAP:g} s before the clip so far ends and holds that overlap clean, and CCL Append Window "
        f"joins it on: 2 + 4 x {EXTEND_SECONDS - EXTEND_OVERLAP:g} s = 10 s, saved as one mp4 with sound.",
        toyav_extend_workflow("a red circle bouncing", "video/toyav_extend", 0),
    ),
}
# Test-only graphs: they need files only the tests write, so they are no user templates.
TEST_WORKFLOWS = {
    "ccl_tiny_smoke": (
        "CCL: tiny smoke test",
        "Runs the whole graph on a tiny random CCL model (models/ccl/ccl_tiny_smoke.safetensors, made by "
        "tests/test_comfy_integration.py) and writes an mp4 of noise: a wiring check, not a generator.",
        [
            (1, "CCLModelLoader", {"ckpt_name": "ccl_tiny_smoke.safetensors", "weight_dtype": "default",
                                   "resident_blocks": -1}, {}, None),
            (2, "CCLEmptyJointLatent", {"width": 32, "height": 32, "seconds": 2.0, "batch_size": 1},
             {"model": (1, 0)}, None),
            (3, "CCLNullText", {}, {"model": (1, 0)}, None),
            (4, "CCLGuider", {"form": "decoupled", "video_scale": 4.0, "audio_scale": 3.0, "video_av_scale": 2.0,
                              "audio_av_scale": 2.0, "skip_block": 1}, {"model": (1, 0), "positive": (3, 0)}, None),
            (5, "KSamplerSelect", {"sampler_name": "euler"}, {}, None),
            (6, "BasicScheduler", {"scheduler": "simple", "steps": 4, "denoise": 1.0}, {"model": (1, 0)}, None),
            (7, "RandomNoise", {"noise_seed": 0}, {}, None),
            (8, "SamplerCustomAdvanced", {}, {"noise": (7, 0), "guider": (4, 0), "sampler": (5, 0),
                                              "sigmas": (6, 0), "latent_image": (2, 0)}, None),
            (9, "CCLLatentPreview", {}, {"latent": (8, 0)}, None),
            (10, "CCLCreateVideo", {"fps": 8.0}, {"images": (9, 0), "fps": (9, 2), "audio": (9, 1)}, None),
            (11, "CCLSaveVideo", {"filename_prefix": "video/ccl_smoke", "crf": 19}, {"video": (10, 0)}, None),
            (12, "SaveVideo", {"filename_prefix": "video/ccl_smoke_native", "format": "auto", "codec": "auto"},
             {"video": (10, 0)}, None),
        ],
    ),
}
# Where each table is written (relative to the repo): UI files there, their API twins in its api/. ComfyUI lists
# the templates folder; the fixtures folder is read only by the tests.
TEMPLATES = "workflows"
FIXTURES = "tests/fixtures/workflows"
FOLDERS = {TEMPLATES: WORKFLOWS, FIXTURES: TEST_WORKFLOWS}
# UI-only widgets the frontend adds after a native node's own (upload buttons), as in ComfyUI's templates
UI_EXTRA_WIDGETS = {"LoadAudio": [None, None], "LoadVideo": ["image"], "LoadImage": ["image"]}


# ---------------------------------------------------------------------- node specs
def pack_specs():
    """object_info-like specs of the pack's nodes (loaded against the stub, read from their V3 schemas)."""
    from pack_loader import node_classes, node_info

    out = {}
    for name, cls in node_classes().items():
        info = node_info(cls)
        out[name] = {
            "input": {s: {k: [v[0], v[1] if len(v) > 1 else {}] for k, v in info["input"].get(s, {}).items()}
                      for s in ("required", "optional")},
            "input_order": {s: info["input_order"].get(s, []) for s in ("required", "optional")},
            "output": info["output"], "output_name": info["output_name"], "output_node": info["output_node"],
        }
    return out


def native_specs():
    with open(NATIVE_SPECS) as f:
        return json.load(f)


def all_specs():
    specs = native_specs()
    specs.update(pack_specs())
    return specs


def input_kind(spec_entry):
    """'widget' or the socket type of one input spec [type_or_options, opts]."""
    t = spec_entry[0]
    if isinstance(t, list) or t in WIDGET_TYPES:
        return "widget"
    return t


def input_type(spec_entry):
    t = spec_entry[0]
    return "COMBO" if isinstance(t, list) else t


# ---------------------------------------------------------------------- builders
def build_api(nodes, specs):
    api = {}
    for nid, ntype, widgets, links, title in nodes:
        spec = specs[ntype]
        inputs = {}
        for section in ("required", "optional"):
            for name in spec["input_order"].get(section, []):
                if name in links:
                    src, slot = links[name]
                    inputs[name] = [str(src), slot]
                elif name in widgets:
                    inputs[name] = widgets[name]
        api[str(nid)] = {"class_type": ntype, "inputs": inputs, "_meta": {"title": title or ntype}}
    return api


def build_ui(nodes, specs, notes):
    link_rows, out_links = [], {}
    link_id = 0
    order = {nid: i for i, (nid, *_rest) in enumerate(nodes)}
    for nid, ntype, widgets, links, title in nodes:
        spec = specs[ntype]
        for section in ("required", "optional"):
            for name in spec["input_order"].get(section, []):
                if name not in links:
                    continue
                src, slot = links[name]
                src_type = next(n[1] for n in nodes if n[0] == src)
                link_id += 1
                slot_in = _socket_index(spec, name, links)
                link_rows.append([link_id, src, slot, nid, slot_in, specs[src_type]["output"][slot]])
                out_links.setdefault((src, slot), []).append(link_id)
    ui_nodes = []
    for col, (nid, ntype, widgets, links, title) in enumerate(nodes):
        spec = specs[ntype]
        inputs, values = [], []
        for section in ("required", "optional"):
            for name in spec["input_order"].get(section, []):
                entry = spec["input"][section][name]
                kind = input_kind(entry)
                link = None if name not in links else next(
                    r[0] for r in link_rows if r[3] == nid and r[4] == _socket_index(spec, name, links))
                if kind != "widget":
                    item = {"name": name, "type": kind, "link": link}
                    if section == "optional":
                        item["shape"] = 7
                    inputs.append(item)
                    continue
                if name in links:
                    inputs.append({"name": name, "type": input_type(entry), "widget": {"name": name}, "link": link})
                opts = entry[1] if len(entry) > 1 else {}
                values.append(widgets.get(name, opts.get("default")))
                if opts.get("control_after_generate"):
                    values.append("fixed")
        values += UI_EXTRA_WIDGETS.get(ntype, [])
        outputs = [{"name": oname, "type": otype, "links": out_links.get((nid, i), []), "slot_index": i}
                   for i, (otype, oname) in enumerate(zip(spec["output"], spec["output_name"]))]
        node = {"id": nid, "type": ntype, "pos": [40 + 340 * (col % 6), 60 + 420 * (col // 6)],
                "size": [300, 130 + 26 * len(values)], "flags": {}, "order": order[nid], "mode": 0,
                "inputs": inputs, "outputs": outputs, "properties": {"Node name for S&R": ntype},
                "widgets_values": values}
        if title:
            node["title"] = title
        ui_nodes.append(node)
    note_id = max(n[0] for n in nodes) + 1
    ui_nodes.append({"id": note_id, "type": "MarkdownNote", "pos": [40, -200], "size": [700, 160], "flags": {},
                     "order": len(nodes), "mode": 0, "inputs": [], "outputs": [],
                     "properties": {}, "widgets_values": [notes]})
    return {"last_node_id": note_id, "last_link_id": link_id, "nodes": ui_nodes, "links": link_rows,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


def _socket_index(spec, name, links):
    """Index of input `name` among the node's UI inputs (sockets, plus widgets turned into inputs)."""
    i = 0
    for section in ("required", "optional"):
        for n in spec["input_order"].get(section, []):
            if input_kind(spec["input"][section][n]) != "widget" or n in links:
                if n == name:
                    return i
                i += 1
    raise KeyError(name)


def render():
    """path (relative to the repo) -> file text."""
    specs = all_specs()
    files = {}
    for folder, table in FOLDERS.items():
        for name, (title, notes, nodes) in table.items():
            ui = build_ui(nodes, specs, f"## {title}\n\n{notes}")
            files[f"{folder}/{name}.json"] = json.dumps(ui, indent=1) + "\n"
            files[f"{folder}/api/{name}.json"] = json.dumps(build_api(nodes, specs), indent=1) + "\n"
    return files


def refresh_native(source: str) -> None:
    if source.startswith("http"):
        import urllib.request
        with urllib.request.urlopen(source) as r:
            info = json.load(r)
    else:
        with open(source) as f:
            info = json.load(f)
    core = {k: v for k, v in info.items() if not str(v.get("python_module", "")).startswith("custom_nodes")}
    with open(NATIVE_TXT, "w") as f:
        f.write("# Native node types of ComfyUI 0.3.68 (from its /object_info; tools/make_workflows.py --native)\n")
        f.writelines(k + "\n" for k in sorted(core))
    used = {n[1] for table in FOLDERS.values() for _, _, nodes in table.values() for n in nodes} | {"MarkdownNote"}
    keep = {k: {f: core[k].get(f) for f in ("input", "input_order", "output", "output_name", "output_node")}
            for k in sorted(used) if k in core}
    with open(NATIVE_SPECS, "w") as f:
        json.dump(keep, f, indent=1, sort_keys=True)
        f.write("\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--native")
    args = ap.parse_args(argv)
    if args.native:
        refresh_native(args.native)
    stale = []
    for rel, text in render().items():
        path = os.path.join(ROOT, rel)
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            stale.append(rel)
            if not args.check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(text)
    if args.check and stale:
        print("out of date:", ", ".join(stale))
        return 1
    print("wrote" if stale and not args.check else "up to date:", ", ".join(stale) or "all files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
