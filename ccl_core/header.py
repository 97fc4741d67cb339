"""What a safetensors checkpoint's header says (Header, TensorInfo) and the error for a file that cannot be used.

A leaf module: checkpoint.py reads and checks headers, ovi.py infers Ovi configs from them, and both
import these types from here (so neither imports the other for them).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Dict, Tuple, Union

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


def read_raw_header(path: Union[str, os.PathLike]) -> Tuple[dict, int, int]:
    """A safetensors file's header as its JSON object (`__metadata__` included), the byte offset where
    the tensor data starts, and the file's size. A missing file, one too short, an impossible header
    length or a header that is no JSON object is refused. checkpoint.read_header checks the tensors on
    top; latent_spec.stamp_file rewrites the header and copies the data after it unchanged."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint not found: {path}")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is not a safetensors file: only {size} bytes long")
        (n,) = struct.unpack("<Q", head)
        if n <= 0 or n > min(size - 8, 100 * 2**20):
            raise CheckpointError(f"{path} is not a valid safetensors file (header length {n} for a "
                                  f"{size}-byte file): corrupt, truncated or another format")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({e}); the file is corrupt") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is a JSON {type(header).__name__}, not an object; "
                              f"the file is corrupt")
    return header, 8 + n, size


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
