"""Stub of comfy_api.latest: io (V3 schema), ui, ComfyExtension, InputImpl.VideoFromComponents
(get_components only) and Types.VideoComponents."""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from types import SimpleNamespace
from typing import Optional

import torch

from . import _io as io  # noqa: F401
from . import _ui as ui  # noqa: F401


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        """Called once when ComfyUI loads the extension."""

    @abstractmethod
    async def get_node_list(self) -> list:
        """The io.ComfyNode classes the extension registers."""


@dataclass
class VideoComponents:
    images: torch.Tensor
    frame_rate: Fraction
    audio: Optional[dict] = None
    metadata: Optional[dict] = None


class VideoFromComponents:
    def __init__(self, components):
        self._components = components

    def get_components(self):
        return self._components


InputImpl = SimpleNamespace(VideoFromComponents=VideoFromComponents)
Types = SimpleNamespace(VideoComponents=VideoComponents)
