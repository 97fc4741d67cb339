"""ComfyUI adapters over ccl_core, one module per node family (V3 schema: io.ComfyNode classes).

To add a family (e.g. the embedded ToyAV loaders), write nodes/<family>.py ending with a list
NODES of its node classes and add its name to FAMILIES.
"""

from importlib import import_module

FAMILIES = ("model_loading", "latents", "tasks", "extend", "guidance", "decode", "video", "toyav")

NODES = []
for _name in FAMILIES:
    NODES.extend(import_module(f".{_name}", __name__).NODES)

from .model_loading import register_folder  # noqa: E402

register_folder()
