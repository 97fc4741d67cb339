"""The one place the pack imports ComfyUI's node API (V3 schema).

The versioned `comfy_api.v0_0_2` (ComfyUI 0.3.68 and 0.12) keeps the surface the nodes were written
against; where it is absent, `comfy_api.latest` gives the same names.
"""

try:
    from comfy_api.v0_0_2 import ComfyExtension, InputImpl, Types, io, ui
except ImportError:
    from comfy_api.latest import ComfyExtension, InputImpl, Types, io, ui

__all__ = ["ComfyExtension", "InputImpl", "Types", "io", "ui"]
