"""A mixin for config dataclasses that travel as JSON (in checkpoints, run directories, logs), and the
command line's FIELD=VALUE overrides of their fields."""

from __future__ import annotations

import dataclasses
import json
import math
import typing


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


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _type_check(value, hint) -> typing.Optional[str]:
    """None when a JSON value fits a field's type hint, else what the field takes."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is int:
        return None if _is_int(value) else "an integer"
    if hint is float:
        ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
        return None if ok else "a finite number"
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if origin is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if value is None or len(inner) != 1:
            return None
        want = _type_check(value, inner[0])
        return None if want is None else f"null or {want}"
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return "a list"
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            return f"a list of {len(items)}"
        bad = [_type_check(v, t) for v, t in zip(value, items)]
        return next((f"a list of {len(items)} ({b} each)" for b in bad if b), None)
    return None  # other hints (dicts, lists of configs) are left to the dataclass itself


def field_problems(cls, d) -> list:
    """Unknown, missing and wrong-typed fields of a JSON object `d` for the dataclass `cls`, each naming
    its field, so a bad file says which field to fix instead of failing later with a TypeError."""
    if not isinstance(d, dict):
        return [f"expected a JSON object of {cls.__name__} fields, got {type(d).__name__}"]
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems = []
    unknown = sorted(set(d) - set(fields))
    if unknown:
        problems.append(f"unknown fields {unknown}")
    for name, f in fields.items():
        if name not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"missing field {name!r}")
            continue
        want = _type_check(d[name], hints[name])
        if want:
            problems.append(f"field {name!r} must be {want}, got {d[name]!r}"[:300])
    return problems


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
