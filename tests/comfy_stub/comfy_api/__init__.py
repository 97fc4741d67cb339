"""Stub of the comfy_api package (see tests/comfy_stub/README.md)."""
