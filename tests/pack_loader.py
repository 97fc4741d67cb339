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


def node_classes(pack=None):
    """node id -> class, as ComfyUI registers a V3 pack: comfy_entrypoint() -> ComfyExtension ->
    get_node_list(), each class keyed by its schema's node_id."""
    import asyncio

    pack = pack or load_pack()
    classes = asyncio.run(pack.comfy_entrypoint().get_node_list())
    out = {}
    for cls in classes:
        node_id = cls.GET_SCHEMA().node_id
        assert node_id not in out, f"node id {node_id} registered twice"
        out[node_id] = cls
    return out


def node_info(cls):
    """The /object_info entry ComfyUI serves for a V3 node, built from its schema the way ComfyUI does:
    inputs by section (required / optional / hidden) in schema order, each [type, options without
    'optional']; outputs with their types, display names (the type when unnamed) and tooltips."""
    schema = cls.GET_SCHEMA()
    inputs = {"required": {}}
    for i in schema.inputs or []:
        opts = {k: v for k, v in i.as_dict().items() if k != "optional"}
        inputs.setdefault("optional" if i.optional else "required", {})[i.id] = [i.get_io_type(), opts]
    for h in schema.hidden or []:
        inputs.setdefault("hidden", {})[h.name] = [h.value]
    outputs = schema.outputs or []
    return {
        "name": schema.node_id, "display_name": schema.display_name, "category": schema.category,
        "description": schema.description, "output_node": bool(schema.is_output_node),
        "input": inputs, "input_order": {s: list(v) for s, v in inputs.items()},
        "output": [o.io_type for o in outputs], "output_name": [o.display_name or o.io_type for o in outputs],
        "output_tooltips": [o.tooltip for o in outputs],
    }
