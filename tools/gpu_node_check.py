"""Device check of the node layer (needs torch with CUDA; runs against tests/comfy_stub, no ComfyUI).

    python tools/gpu_node_check.py

1. The model adapter and the UCG guider on CUDA (latents, clean a2v latent and text coming from the
   CPU as ComfyUI hands them over) agree with the same run on the CPU.
2. memory_required (what ComfyUI uses to decide offloading and cond batching) against the measured
   peak of one forward of a 2-block Ovi-width model (bf16) at Ovi's 704 x 704, 5 s latent, 3 branches.
Prints one JSON line. (Written for the device machine; part 1 was dry-run on the CPU, neither part has run on a GPU yet.)
"""

import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))


def main():
    res = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if not torch.cuda.is_available():
        print(json.dumps(res))
        return
    res["device"] = torch.cuda.get_device_name()
    from pack_loader import load_pack, node_classes
    pack = load_pack()
    import comfy.model_management as mm
    core, N, joint, latent_spec = pack.ccl_core, node_classes(pack), pack.nodes.joint, pack.ccl_core.latent_spec

    torch.manual_seed(0)
    net = core.DualStreamModel(core.tiny_config())
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not name.endswith("ctx_logit_bias"):
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "norm" in name and p.ndim == 1 else 0.0))
    model = pack.nodes.comfy_model.build_model(net, latent_spec.model_spec(net.config))
    lat = N["CCLEmptyJointLatent"].execute(model, 16, 16, 2.0, 2)[0]
    v0, a0 = lat["samples"].unbind()
    g = torch.Generator().manual_seed(1)
    clean = torch.randn(a0.shape, generator=g)
    pos = [[torch.randn(1, 5, 16, generator=g), {"ccl_task": "a2v", "ccl_clean_audio": clean}]]
    noise = joint.nested((torch.randn(v0.shape, generator=g), torch.randn(a0.shape, generator=g)))
    latent = joint.nested((v0, clean))
    outs = {}
    torch.set_grad_enabled(False)  # ComfyUI samples without autograd
    for dev in ("cpu", "cuda"):
        model.model.diffusion_model.to(dev)
        guider = N["CCLGuider"].execute(model, pos, "decoupled", 4.0, 3.0, 2.0, 2.0, 1)[0]
        d = torch.device(dev)
        # no noise mask: the model holds a2v's audio at its clean latent itself (routing.TASKS)
        outs[dev] = guider.sample(noise.to(d), latent.to(d), None, torch.tensor([1.0, 0.7, 0.3, 0.0], device=d))
    cv, ca = outs["cpu"].unbind()
    gv, ga = outs["cuda"].unbind()
    res["cpu_vs_cuda_max_abs_diff"] = float(max((cv - gv.cpu()).abs().max(), (ca - ga.cpu()).abs().max()))
    res["held_audio_max_abs_diff_cuda"] = float((ga.cpu() - clean).abs().max())

    # memory estimate vs measured peak, Ovi width, 2 blocks, bf16, 704 x 704, 5 s, 3 branches
    mm.pytorch_attention_flash_attention = lambda: True
    cfg = core.ovi_config(num_layers=2)
    with torch.device("meta"):
        big = core.DualStreamModel(cfg)
    big = big.to_empty(device="cuda").to(torch.bfloat16)
    with torch.no_grad():
        for p in big.parameters():
            p.normal_(0, 0.02)
    bm = pack.nodes.comfy_model.build_model(big, latent_spec.model_spec(cfg))
    spec = bm.model.ccl_spec
    t, h, w, length = spec.sizes(5.0, 704, 704)[:4]
    b = 3
    v = torch.randn(b, 48, t, h, w, device="cuda", dtype=torch.bfloat16)
    a = torch.randn(b, 20, length, device="cuda", dtype=torch.bfloat16)
    text = torch.randn(b, 512, cfg.text_dim, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    with torch.no_grad():
        bm.model.diffusion_model([v, a], torch.full((b,), 500.0, device="cuda"), text,
                                 ccl_ctx_only=torch.tensor([1, 0, 0], device="cuda"))
    torch.cuda.synchronize()
    res["ovi_width_2_blocks_forward_s"] = round(time.time() - t0, 3)
    res["measured_peak_GiB"] = round((torch.cuda.max_memory_allocated() - base) / 2**30, 3)
    packed = [b, 1, v[0].numel() + a[0].numel()]
    res["memory_required_GiB"] = round(bm.model.memory_required(packed) / 2**30, 3)
    res["tokens"] = int(t * h * w // 4 + length)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
