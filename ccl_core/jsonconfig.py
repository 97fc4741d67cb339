"""A mixin for config dataclasses that travel as JSON (in checkpoints, run directories, logs), and the
command line's FIELD=VALUE overrides of their fields."""

from __future__ import annotations

import dataclasses
import json


class JsonConfig:
    """to_dict / to_json / from_dict / from_json / replace for a dataclass; unknown fields are errors."""

    _json_indent = None

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=self._json_indent, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown {cls.__name__} fields {unknown}; known fields: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, s: str):
        return cls.from_dict(json.loads(s))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def parse_sets(pairs, option: str = "--set") -> dict:
    """key=value pairs; values are JSON when they parse as JSON (numbers, lists, null), else strings."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"{option} takes key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
