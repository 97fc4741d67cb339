"""Stub of comfy_api.latest: InputImpl.VideoFromComponents (get_components) and Types.VideoComponents."""
from dataclasses import dataclass
from fractions import Fraction
from types import SimpleNamespace
from typing import Optional

import torch


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
