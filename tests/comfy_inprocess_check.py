"""Run with ComfyUI's Python: the pack's nodes on the real ComfyUI modules, in-process (CPU).

    COMFYUI_PATH=... $COMFYUI_PYTHON tests/comfy_inprocess_check.py OUT.json

Loads the pack the way ComfyUI does, builds a tiny random CCL model, and checks with the real
samplers: every guidance form through SamplerCustomAdvanced; a2v and v2a through SamplerCustomAdvanced
and KSampler (the conditioning stream after sampling vs the given clean latent, and after CCL Split /
CCL Decode, which restore it); the guider's two negatives (Ovi's audio negative) against ccl_core;
i2av's first frame and an extension's overlap under the UCG guider, BasicGuider and KSampler, and
Append Window's join; that a native VAE (pixel_space) decodes a split video half. Writes the results
as JSON for tests/test_comfy_integration.py.
"""

import asyncio
import importlib.util
import json
import os
import sys

COMFY = os.environ["COMFYUI_PATH"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out_path = sys.argv[1]
LTS = os.path.isfile(os.path.join(COMFY, "comfy", "cmd", "main.py"))
if LTS:
    # ComfyUI LTS (0.12.x), installed in this Python: its options come from COMFYUI_* variables when
    # not parsed from the command line, and its loader makes folder_paths and nodes importable by their
    # upstream names before custom nodes import; so here. Its extra nodes live in comfy_extras.nodes.
    os.environ["COMFYUI_CPU"] = "true"
    from comfy_compatibility.vanilla import prepare_vanilla_environment
    prepare_vanilla_environment()
else:
    sys.path.insert(0, COMFY)
    import comfy.options

    comfy.options.enable_args_parsing()
    sys.argv = [sys.argv[0], "--cpu"]
import torch  # noqa: E402

torch.set_num_threads(2)
import comfy.samplers  # noqa: E402
import nodes as comfy_nodes  # noqa: E402

if LTS:
    from comfy_extras.nodes.nodes_custom_sampler import (BasicScheduler, Guider_Basic, Noise_RandomNoise,
                                                         SamplerCustomAdvanced)
else:
    from comfy_extras.nodes_custom_sampler import BasicScheduler, Guider_Basic, Noise_RandomNoise, SamplerCustomAdvanced

spec = importlib.util.spec_from_file_location("ccl_inproc", os.path.join(ROOT, "__init__.py"),
                                              submodule_search_locations=[ROOT])
pack = importlib.util.module_from_spec(spec)
sys.modules["ccl_inproc"] = pack
spec.loader.exec_module(pack)
N = {}  # node id -> class, registered the way ComfyUI does: comfy_entrypoint() -> get_node_list()
for _cls in asyncio.run(pack.comfy_entrypoint().get_node_list()):
    N[_cls.GET_SCHEMA().node_id] = _cls
core = pack.ccl_core

torch.manual_seed(0)
net = core.DualStreamModel(core.tiny_config(video_channels=3))
with torch.no_grad():
    for name, p in net.named_parameters():
        if not name.endswith("ctx_logit_bias"):
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "norm" in name and p.ndim == 1 else 0.0))
model = pack.nodes.comfy_model.build_model(net, pack.ccl_core.latent_spec.model_spec(net.config))
lat, fps, frames = N["CCLEmptyJointLatent"].execute(model, 16, 16, 2.0, 1)
pos = [[torch.randn(1, 5, 16), {}]]
sampler = comfy.samplers.sampler_object("euler")
sigmas = BasicScheduler().get_sigmas(model, "simple", 4, 1.0)[0]
res = {"forms": {}}


class FakeAudioVAE:
    """Audio VAE contract of ComfyUI's VAE: encode [B, S, C] -> [B, C, L], decode -> [B, S, C]."""
    output_channels = 1

    def encode(self, wav):
        b, s, c = wav.shape
        n = s // 2756
        return wav[:, :n * 2756].reshape(b, n, 2756, c).mean((2, 3)).unsqueeze(1).repeat(1, 3, 1) + 0.5

    def decode(self, z):
        return z.mean(1, keepdim=True).repeat_interleave(2756, 2).movedim(1, -1)


for form in ("joint", "decoupled", "cfg", "ovi", "none"):
    g = N["CCLGuider"].execute(model, pos, form, 4.0, 3.0, 2.0, 2.0, 1)[0]
    out = SamplerCustomAdvanced().sample(Noise_RandomNoise(1), g, sampler, sigmas, lat)[0]
    shapes = [list(t.shape) for t in out["samples"].unbind()]
    res["forms"][form] = {"shapes": shapes, "finite": bool(all(torch.isfinite(t).all() for t in out["samples"].unbind()))}

px = comfy_nodes.VAELoader().load_vae("pixel_space")[0]  # native identity image VAE, 3 channels
audio = {"waveform": torch.randn(1, 2, 44100 * 3), "sample_rate": 44100}
frames_in = torch.rand(20, 16, 16, 3)
for task, (p, n, l2) in {
    "a2v": N["CCLAudioToVideo"].execute(pos, lat, FakeAudioVAE(), audio),
    "v2a": N["CCLVideoToAudio"].execute(pos, lat, px, frames_in, 10.0),
}.items():
    stream = 1 if task == "a2v" else 0
    clean = l2["ccl"]["clean"]["audio" if task == "a2v" else "video"]
    g = N["CCLGuider"].execute(model, p, "joint", 4.0, 3.0, 2.0, 2.0, 1)[0]
    out = SamplerCustomAdvanced().sample(Noise_RandomNoise(3), g, sampler, sigmas, l2)[0]
    ks = comfy_nodes.common_ksampler(model, 5, 3, 3.0, "euler", "simple", p, n, l2)[0]
    split = N["CCLSplitLatent"].execute(out)[stream]["samples"]
    other = out["samples"].unbind()[1 - stream]
    res[task] = {
        "sampler_max_abs_diff": float((out["samples"].unbind()[stream] - clean).abs().max()),
        "ksampler_max_abs_diff": float((ks["samples"].unbind()[stream] - clean).abs().max()),
        "split_exact": bool(torch.equal(split, clean)),
        "generated_stream_changed": bool((other - lat["samples"].unbind()[1 - stream]).abs().max() > 0.01),
    }
    images, aud, _ = N["CCLDecode"].execute(out, px, FakeAudioVAE())
    res[task]["decode"] = {"images": list(images.shape), "audio": list(aud["waveform"].shape), "rate": aud["sample_rate"]}

# Ovi's two negatives through the real samplers: the guider's negative_audio reaches the audio tower
# (cond key ccl_text_audio) and both branches still run as one batch. One Euler step from s to 0
# returns the guided x0 = x - s * v, compared with ccl_core's guided_velocity.
neg_v, neg_a = torch.randn(1, 3, 16), torch.randn(1, 4, 16)
dm, calls = model.model.diffusion_model, []
dm.forward = lambda x, *a, _f=dm.forward, **k: calls.append(x[0].shape[0]) or _f(x, *a, **k)
g = N["CCLGuider"].execute(model, pos, "ovi", 4.0, 3.0, 2.0, 2.0, 1, negative=[[neg_v, {}]],
                           negative_audio=[[neg_a, {}]])[0]
s = 0.6
out2 = SamplerCustomAdvanced().sample(Noise_RandomNoise(5), g, sampler, torch.tensor([s, 0.0]), lat)[0]
del dm.forward
nv, na = Noise_RandomNoise(5).generate_noise(lat).unbind()
ov, oa = out2["samples"].unbind()
ovi_g = core.guidance.Guidance("ovi", 4.0, 3.0, 2.0, 2.0, skip_block=1)
with torch.no_grad():
    ev, ea = core.guidance.guided_velocity(net, s * nv, s * na, s, s, pos[0][0], neg_v, ovi_g, uncond_text_audio=neg_a)
    _, ea_one = core.guidance.guided_velocity(net, s * nv, s * na, s, s, pos[0][0], neg_v, ovi_g)
res["two_negatives"] = {
    "video_max_abs_diff": float((ov - (s * nv - s * ev)).abs().max()),
    "audio_max_abs_diff": float((oa - (s * na - s * ea)).abs().max()),
    "audio_vs_one_negative": float((oa - (s * na - s * ea_one)).abs().max()),
    "model_call_batches": calls,
}

# Clean prefixes (i2av's first frame, an extension's overlap) under every kind of guider: the CCL UCG guider,
# BasicGuider (Guider_Basic) and KSampler's CFGGuider; the held positions vs their clean latent after sampling.
def prefix_run(p, n, l2):
    ucg = N["CCLGuider"].execute(model, p, "joint", 4.0, 3.0, 2.0, 2.0, 1)[0]
    basic = Guider_Basic(model)
    basic.set_conds(p)
    return {"ucg": SamplerCustomAdvanced().sample(Noise_RandomNoise(5), ucg, sampler, sigmas, l2)[0],
            "basic": SamplerCustomAdvanced().sample(Noise_RandomNoise(6), basic, sampler, sigmas, l2)[0],
            "ksampler": comfy_nodes.common_ksampler(model, 7, 3, 3.0, "euler", "simple", p, n, l2)[0]}


def held_diff(result, l2):
    clean, prefix = l2["ccl"]["clean"], l2["ccl"]["prefix"]
    parts = dict(zip(("video", "audio"), result["samples"].unbind()))
    return max(float((parts[k][:, :, :m] - clean[k][:, :, :m]).abs().max()) for k, m in prefix.items() if m)


p, n, l2 = N["CCLImageToVideo"].execute(pos, lat, px, torch.rand(1, 20, 24, 3))  # a 24x20 picture, cropped
runs = prefix_run(p, n, l2)
res["i2av"] = {k: held_diff(r, l2) for k, r in runs.items()}
res["i2av"]["split_exact"] = bool(torch.equal(N["CCLSplitLatent"].execute(runs["ucg"])[0]["samples"][:, :, :1],
                                              l2["ccl"]["clean"]["video"][:, :, :1]))
clip = runs["ucg"]
p, n, l2 = N["CCLExtend"].execute(pos, clip, 0.5, 2.0)
runs = prefix_run(p, n, l2)
res["extend"] = {k: held_diff(r, l2) for k, r in runs.items()}
res["extend"]["prefix"] = l2["ccl"]["prefix"]
res["extend"]["joined"] = [list(t.shape) for t in N["CCLAppendWindow"].execute(clip, runs["ksampler"])[0]["samples"].unbind()]

v_half, a_half = N["CCLSplitLatent"].execute(out)
img = comfy_nodes.VAEDecode().decode(px, {"samples": v_half["samples"][:, :, 0]})[0]  # one frame: an image latent
res["native_vae_decode_of_split_frame"] = list(img.shape)
with open(out_path, "w") as f:
    json.dump(res, f, indent=1)
print(json.dumps(res))
