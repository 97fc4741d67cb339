"""ComfyUI adapters over ccl_core, one module per node family.

To add a family (e.g. the embedded ToyAV loaders), write nodes/<family>.py with its own
NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS and add its name to FAMILIES.
"""

from importlib import import_module

FAMILIES = ("model_loading", "latents", "tasks", "guidance", "decode", "video", "toyav")

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

for _name in FAMILIES:
    _module = import_module(f".{_name}", __name__)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

from .model_loading import register_folder  # noqa: E402

register_folder()
