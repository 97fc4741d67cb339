"""Start a real ComfyUI's modules in-process on the CPU, for checks and benchmarks run with its Python.

    boot(flags) -> (folder_paths, nodes module, comfy_extras' nodes_custom_sampler module, pack module)

COMFYUI_PATH is an upstream checkout (0.3.x: main.py beside comfy/, put on sys.path) or the source
tree of the pip-installed "ComfyUI LTS" 0.12 (its packages come from the venv, and its vanilla
environment provides the top-level folder_paths / nodes modules custom nodes import). A temporary
base directory holds models/, input/, output/. The pack is loaded from this repository under the
module name `ccl_pack` the way ComfyUI loads custom nodes.
"""

import importlib
import importlib.util
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def boot(flags=()):
    comfy_path = os.environ["COMFYUI_PATH"]
    base = tempfile.mkdtemp(prefix="ccl_comfy_")
    for sub in ("models/loras", "input", "output", "temp", "custom_nodes"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    lts = os.path.isdir(os.path.join(comfy_path, "comfy", "cmd"))
    if not lts:
        sys.path.insert(0, comfy_path)
    import comfy.options

    comfy.options.enable_args_parsing()
    sys.argv = [sys.argv[0], "--cpu", "--cwd" if lts else "--base-directory", base, *flags]
    if lts:
        from comfy_compatibility.vanilla import prepare_vanilla_environment

        prepare_vanilla_environment()
    import folder_paths
    import nodes

    sampler_nodes = importlib.import_module("comfy_extras.nodes.nodes_custom_sampler" if lts
                                            else "comfy_extras.nodes_custom_sampler")
    spec = importlib.util.spec_from_file_location("ccl_pack", os.path.join(ROOT, "__init__.py"),
                                                  submodule_search_locations=[ROOT])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["ccl_pack"] = pack
    spec.loader.exec_module(pack)
    return folder_paths, nodes, sampler_nodes, pack


class FixedNoise:
    """A NOISE for SamplerCustomAdvanced that returns the given joint noise (a NestedTensor)."""

    seed = 0

    def __init__(self, noise):
        self.noise = noise

    def generate_noise(self, latent):
        return self.noise


def sample_custom_advanced(sampler_nodes, noise, guider, sampler, sigmas, latent):
    """ComfyUI's own SamplerCustomAdvanced node (V1 `sample` or V3 `execute`): the output LATENT."""
    node = sampler_nodes.SamplerCustomAdvanced
    run = node().sample if hasattr(node, "sample") else node.execute
    out = run(FixedNoise(noise), guider, sampler, sigmas, latent)
    return out[0] if isinstance(out, (tuple, list)) else out.result[0]


def is_lts(comfy_path) -> bool:
    """ComfyUI LTS (the pip-installable 0.12 fork) has comfy/cmd/main.py; upstream has main.py at the top."""
    return os.path.isfile(os.path.join(comfy_path, "comfy", "cmd", "main.py"))


def server_command(comfy_path, python, base, port, flags=(), import_times=False):
    """(argv, cwd, env) that start a headless ComfyUI on 127.0.0.1:port whose user folders are `base`.

    Upstream: main.py --base-directory. LTS: what its `comfyui` script runs, with --cwd holding
    custom_nodes/, models/, input/ and output/; it reads COMFYUI_* variables as options, so the
    caller's are not passed on. `import_times`: the LTS logs each custom node's import time only at
    DEBUG level (which also keeps more log lines in memory, so a memory soak leaves it off).
    """
    common = ["--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch", *flags]
    if is_lts(comfy_path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYUI_")}
        level = ["--logging-level", "DEBUG"] if import_times else []
        return [python, "-m", "comfy.cmd.main", "--cwd", str(base), *common, *level], str(base), env
    return [python, "main.py", *common, "--base-directory", str(base)], comfy_path, None


def start_server(comfy_path, python, base, port, log_file, flags=(), timeout=300, import_times=False):
    """Start the server (server_command) writing to `log_file`; return (process, url) once it answers."""
    import subprocess
    import time
    import urllib.request

    cmd, cwd, env = server_command(comfy_path, python, base, port, flags, import_times)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/system_stats", timeout=5).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                stop_server(proc)
                raise RuntimeError(f"ComfyUI did not start (see {getattr(log_file, 'name', 'its log')})")
            time.sleep(1)


def stop_server(proc) -> None:
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
