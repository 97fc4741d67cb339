"""ComfyUI entry point of the CCL audio-video node pack.

Importing this module must stay cheap: no model is loaded and no heavy module is imported here.
"""

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
