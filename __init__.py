"""ComfyUI entry point of the CCL audio-video node pack.

Importing this module stays cheap: no model is loaded, nothing heavy runs. On a ComfyUI that lacks
what the nodes need (nested latents arrived in 0.3.68), the pack logs one line naming the minimum
version and registers no nodes, instead of failing the import with a traceback. Outside ComfyUI
(no folder_paths / comfy at all) it registers nothing, silently.
"""

import logging

MIN_COMFYUI = "0.3.68"
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

# module -> attributes the nodes use that older ComfyUI versions lack
_REQUIRED = {
    "folder_paths": ("get_save_image_path",),
    "comfy.nested_tensor": ("NestedTensor",),
    "comfy.utils": ("pack_latents", "unpack_latents", "ProgressBar"),
    "comfy.samplers": ("CFGGuider", "calc_cond_batch"),
    "comfy.model_base": ("BaseModel",),
    "comfy.conds": ("CONDConstant",),
    "comfy_api.latest": ("InputImpl", "Types"),
}


def _missing_piece():
    """Name of the first missing ComfyUI module or attribute, or None."""
    import importlib

    for module, attrs in _REQUIRED.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            return module
        for attr in attrs:
            if not hasattr(mod, attr):
                return f"{module}.{attr}"
    return None


def _inside_comfyui():
    import importlib.util

    try:
        return importlib.util.find_spec("folder_paths") is not None and importlib.util.find_spec("comfy") is not None
    except (ImportError, ValueError):
        return False


_missing = _missing_piece() if _inside_comfyui() else "ComfyUI"
if _missing == "ComfyUI":  # imported outside ComfyUI (e.g. by pytest collecting the repo): nothing to register
    logging.getLogger(__name__).debug("CCL audio-video: ComfyUI not found; no nodes registered")
elif _missing is not None:
    logging.error("[CCL audio-video] needs ComfyUI >= %s (%s is missing): update ComfyUI; no CCL nodes loaded.",
                  MIN_COMFYUI, _missing)
else:
    try:
        from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    except ImportError as _e:  # a missing Python package (av, torchaudio, safetensors)
        logging.error("[CCL audio-video] cannot load its nodes: %s; install the pack's requirements.txt into "
                      "ComfyUI's Python.", _e)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
