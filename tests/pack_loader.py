"""Load the repository as a ComfyUI pack, the way ComfyUI does, against tests/comfy_stub.

ComfyUI imports custom_nodes/<dir>/__init__.py with importlib under a module name of its own and
does not put the pack's folder on sys.path, so the pack must only use relative imports.
"""
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(ROOT, "tests", "comfy_stub")
NAME = "ccl_pack_under_test"


def load_pack():
    if STUB not in sys.path:
        sys.path.insert(0, STUB)
    if NAME in sys.modules:
        return sys.modules[NAME]
    spec = importlib.util.spec_from_file_location(NAME, os.path.join(ROOT, "__init__.py"),
                                                  submodule_search_locations=[ROOT])
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    spec.loader.exec_module(module)
    return module
