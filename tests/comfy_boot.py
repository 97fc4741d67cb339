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
