"""Stub of comfy_api.v0_0_2: the versioned API, the same names as comfy_api.latest (as in ComfyUI 0.3.68)."""
from comfy_api.latest import ComfyExtension, InputImpl, Types, io, ui  # noqa: F401

__all__ = ["ComfyExtension", "InputImpl", "Types", "io", "ui"]
