"""Stub of the `comfy` package (see tests/comfy_stub/README.md)."""
