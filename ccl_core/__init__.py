"""CCL: joint audio-video generation with one dual-stream diffusion transformer, in plain torch.

Nothing here imports ComfyUI; the node pack (nodes/) adapts these pieces.
"""

from .config import ModelConfig, ovi_config, tiny_config
from .model import DualStreamModel
from .routing import TASKS, Routes, make_routes, sample_tasks

__all__ = ["ModelConfig", "DualStreamModel", "tiny_config", "ovi_config", "TASKS", "Routes",
           "make_routes", "sample_tasks"]
