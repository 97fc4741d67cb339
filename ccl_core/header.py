"""What a safetensors checkpoint's header says (Header, TensorInfo) and the error for a file that cannot be used.

A leaf module: checkpoint.py reads and checks headers, ovi.py infers Ovi configs from them, and both
import these types from here (so neither imports the other for them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from .errors import CCLError


class CheckpointError(CCLError, ValueError):
    """A checkpoint that cannot be used, with what it is and what was expected."""


@dataclass
class TensorInfo:
    dtype: str
    shape: Tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int


@dataclass
class Header:
    path: str
    tensors: Dict[str, TensorInfo]
    metadata: Dict[str, str]

    @property
    def nbytes(self) -> int:
        return sum(t.end - t.start for t in self.tensors.values())
