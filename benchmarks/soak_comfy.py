"""Soak a real ComfyUI server with the embedded model: memory growth, outputs kept, interrupt latency.

    COMFYUI_PATH=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/its/python \\
        python benchmarks/soak_comfy.py [--runs 20] [--out docs/benchmarks/soak.json]

Starts ComfyUI headless on 127.0.0.1 (upstream: main.py --base-directory; "ComfyUI LTS" 0.12:
its `comfyui --cwd`) with this repository as a custom node, then:
- queues the shipped toyav_t2av API workflow `runs` times, one seed each, and reports the server's
  resident memory after the first run (model loaded) and after the last, the growth between them
  (the bar: <= 2 %), and how many distinct mp4 files came out (the bar: one per run);
- queues the same graph at 256x256 (16x the model's tokens, a step about 136x a native one: the
  node warns), once for 2 steps to time a step, then with /interrupt pressed a few seconds into
  sampling, and reports how long the server took to stop (the model checks for an interrupt before
  each of its block pairs, so the bar is about one block pair's time, well under one step's), and
  that the next prompt runs normally. Ovi's 704x704, 5 s on this model is refused by the node.
"""

import argparse
import copy
import glob
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from comfy_boot import is_lts, start_server, stop_server  # noqa: E402

WORKFLOW = os.path.join(ROOT, "workflows", "api", "toyav_t2av.json")


def get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def post(url, payload=None):
    req = urllib.request.Request(url, data=json.dumps(payload or {}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    return json.loads(body) if body else {}


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def wait(url, pid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        hist = get(f"{url}/history/{pid}")
        if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
            return hist[pid]
        time.sleep(0.2)
    raise RuntimeError(f"prompt {pid} did not finish in {timeout} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out")
    args = ap.parse_args()
    comfy, python = os.environ["COMFYUI_PATH"], os.environ.get("COMFYUI_PYTHON", sys.executable)
    base = tempfile.mkdtemp(prefix="ccl_soak_")
    os.makedirs(os.path.join(base, "custom_nodes"))
    os.symlink(ROOT, os.path.join(base, "custom_nodes", "ccl_av"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(base, "server.log"), "w")
    proc, url = start_server(comfy, python, base, port, log)
    kind = "0.12 LTS" if is_lts(comfy) else "upstream"
    graph = json.load(open(WORKFLOW))
    noise = next(k for k, n in graph.items() if n["class_type"] == "RandomNoise")
    save = next(k for k, n in graph.items() if n["class_type"] == "CCLSaveVideo")
    result = {"comfyui": kind, "runs": args.runs}
    try:
        rss, seconds = [], []
        for i in range(args.runs):
            g = copy.deepcopy(graph)
            g[noise]["inputs"]["noise_seed"] = i
            g[save]["inputs"]["filename_prefix"] = "soak/clip"
            start = time.time()
            hist = wait(url, post(url + "/prompt", {"prompt": g, "client_id": "soak"})["prompt_id"], 600)
            if hist["status"].get("status_str") != "success":
                raise RuntimeError(f"run {i} failed: {json.dumps(hist['status'])[:2000]}")
            seconds.append(time.time() - start)
            rss.append(rss_bytes(proc.pid))
        out_dir = os.path.join(base, "output", "soak")
        files = sorted(glob.glob(os.path.join(out_dir, "*.mp4")))
        digests = {hashlib.md5(open(f, "rb").read()).hexdigest() for f in files}
        result.update(rss_after_first_mb=round(rss[0] / 2**20, 1), rss_after_last_mb=round(rss[-1] / 2**20, 1),
                      rss_growth_percent=round(100 * (rss[-1] - rss[0]) / rss[0], 2),
                      mp4_files=len(files), distinct_mp4=len(digests),
                      median_run_s=round(sorted(seconds)[len(seconds) // 2], 2))

        print(json.dumps(result), flush=True)

        big = copy.deepcopy(graph)
        latent = next(k for k, n in big.items() if n["class_type"] == "CCLEmptyJointLatent")
        sched = next(k for k, n in big.items() if n["class_type"] == "BasicScheduler")
        big[latent]["inputs"].update(width=256, height=256, seconds=2.0)
        big[sched]["inputs"]["steps"] = 2
        start = time.time()
        hist = wait(url, post(url + "/prompt", {"prompt": big, "client_id": "soak"})["prompt_id"], 1800)
        two_steps = time.time() - start
        big[sched]["inputs"]["steps"] = 25
        pid = post(url + "/prompt", {"prompt": big, "client_id": "soak"})["prompt_id"]
        while not get(url + "/queue")["queue_running"]:
            time.sleep(0.1)
        time.sleep(0.75 * two_steps)  # well into sampling (the model is loaded already)
        pressed = time.time()
        post(url + "/interrupt")
        hist = wait(url, pid, 1800)
        result["interrupt"] = {"size": "256x256, 2 s", "two_step_run_s": round(two_steps, 2),
                               "latency_s": round(time.time() - pressed, 2),
                               "status": hist["status"].get("status_str"),
                               "messages": [m if isinstance(m, str) else m[0] for m in hist["status"].get("messages", [])]}
        start = time.time()
        hist = wait(url, post(url + "/prompt", {"prompt": copy.deepcopy(graph), "client_id": "soak"})["prompt_id"], 600)
        result["after_interrupt"] = {"status": hist["status"].get("status_str"), "run_s": round(time.time() - start, 2)}
    finally:
        stop_server(proc)
        log.close()
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
