"""ComfyUI entry point of the CCL audio-video node pack (V3 nodes, registered through comfy_entrypoint).

Importing this module stays cheap: no model is loaded, nothing heavy runs. On a ComfyUI that lacks
what the nodes need (nested latents and the V3 node API arrived by 0.3.68), the pack logs one line
naming the reason and the minimum version and registers no nodes, instead of failing the import with
a traceback. Outside ComfyUI (no folder_paths / comfy at all) it registers nothing, silently.

Exports: `comfy_entrypoint` when the nodes loaded. Upstream ComfyUI ignores comfy_entrypoint in a
module that has NODE_CLASS_MAPPINGS, so that name is exported only where it cannot hide the nodes:
empty when nothing loaded (ComfyUI then registers nothing, without a warning of its own), and empty
beside comfy_entrypoint on ComfyUI LTS, whose loader reads both and logs an error for a pack without it.
"""

import importlib
import importlib.util
import logging

MIN_COMFYUI = "0.3.68"

# module -> attributes the nodes use that older ComfyUI versions lack
_REQUIRED = {
    "folder_paths": ("get_save_image_path", "add_model_folder_path", "get_filename_list", "get_full_path"),
    "comfy.nested_tensor": ("NestedTensor",),
    "comfy.utils": ("pack_latents", "unpack_latents", "ProgressBar"),
    "comfy.samplers": ("CFGGuider", "calc_cond_batch"),
    "comfy.model_base": ("BaseModel",),
    "comfy.conds": ("CONDConstant",),
    "comfy_api.latest": ("io", "ui", "ComfyExtension", "InputImpl", "Types"),
}


def _missing_piece():
    """What the first missing ComfyUI module or attribute is, as words, or None."""
    for module, attrs in _REQUIRED.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            return f"{module} is missing"
        except Exception as e:  # noqa: BLE001  (a module that fails as it imports counts as missing)
            return f"{module} fails to import: {type(e).__name__}: {e}"
        for attr in attrs:
            if not hasattr(mod, attr):
                return f"{module}.{attr} is missing"
    return None


def _inside_comfyui():
    try:
        return importlib.util.find_spec("folder_paths") is not None and importlib.util.find_spec("comfy") is not None
    except Exception:  # noqa: BLE001
        return False


def _loader_reads_both():
    """True on ComfyUI LTS (the pip-installable fork; its commands live in comfy.cmd)."""
    try:
        return importlib.util.find_spec("comfy.cmd") is not None
    except Exception:  # noqa: BLE001
        return False


def _load_nodes():
    """(node classes, None), or (None, the reason as one line) for any failure while importing them."""
    missing = _missing_piece()
    if missing is not None:
        return None, f"[CCL audio-video] needs ComfyUI >= {MIN_COMFYUI} ({missing}): update ComfyUI; no CCL nodes loaded."
    try:
        from .nodes import NODES
    except ImportError as e:
        name = e.name or ""
        if name.split(".")[0] not in ("comfy", "comfy_api", "folder_paths") and not name.startswith(__name__):
            return None, (f"[CCL audio-video] cannot load its nodes: {e}; install the pack's requirements.txt "
                          f"into ComfyUI's Python (and use ComfyUI >= {MIN_COMFYUI}).")
        return None, f"[CCL audio-video] needs ComfyUI >= {MIN_COMFYUI} ({e}): update ComfyUI; no CCL nodes loaded."
    except Exception as e:  # noqa: BLE001  (one line, never a traceback: see the module docstring)
        return None, (f"[CCL audio-video] cannot load its nodes ({type(e).__name__}: {e}); it needs ComfyUI >= "
                      f"{MIN_COMFYUI}: update ComfyUI or report the error; no CCL nodes loaded.")
    return list(NODES), None


if not _inside_comfyui():  # imported outside ComfyUI (e.g. by pytest collecting the repo): nothing to register
    logging.getLogger(__name__).debug("CCL audio-video: ComfyUI not found; no nodes registered")
    NODE_CLASS_MAPPINGS = {}
    __all__ = ["NODE_CLASS_MAPPINGS"]
else:
    _nodes, _reason = _load_nodes()
    if _nodes is None:
        logging.error(_reason)
        NODE_CLASS_MAPPINGS = {}
        __all__ = ["NODE_CLASS_MAPPINGS"]
    else:
        from .nodes.api import ComfyExtension

        class CCLExtension(ComfyExtension):
            async def get_node_list(self):
                return list(_nodes)

        def comfy_entrypoint():
            """The pack's nodes for ComfyUI's V3 loader."""
            return CCLExtension()

        WEB_DIRECTORY = "./web"  # web/docs/<NodeId>.md: the help page the frontend shows for each node
        __all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
        if _loader_reads_both():
            NODE_CLASS_MAPPINGS = {}
            __all__.append("NODE_CLASS_MAPPINGS")
