"""Stub of comfy/patcher_extension.py: the callback names a ModelPatcher runs (ON_LOAD after a load)."""


class CallbacksMP:
    ON_CLONE = "on_clone"
    ON_LOAD = "on_load_after"
    ON_DETACH = "on_detach_after"
