"""What a safetensors checkpoint's header says (Header, TensorInfo) and the error for a file that cannot be used.

A leaf module: checkpoint.py reads and checks headers, ovi.py infers Ovi configs from them, and both
import these types from here (so neither imports the other for them).
"""

from __future__ import annotations

import json
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


def metadata_object(raw: str, key: str, holds: str, where: str = "checkpoint") -> dict:
    """A JSON object kept as one metadata field of a file; a bad one is refused naming the field
    (`key`), what it should hold and the file (`where`)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{where}: metadata {key} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{where}: metadata {key} is a JSON {type(value).__name__}, not an object of {holds}")
    return value
