"""The package split (README, "Layout"): the runtime never imports the research side.

ccl_core and nodes/ are what the pack runs; ccl_train (training library) and ccl_lab (ToyAV research
tooling) build on ccl_core and are left out of the published archive (.comfyignore), so an import of
them from the runtime, even a lazy one inside a function, would break the pack for its users. The
training library in turn builds on ccl_core alone: ToyAV is one user of it, not a part of it.
"""

import ast
import os
import subprocess
import sys
import textwrap

from conftest import ROOT

RESEARCH = ("ccl_lab", "ccl_train")


PACK = "<pack>"  # the repository root, the package ComfyUI imports the pack as
PACK_PARTS = ("ccl_core", "nodes", "ccl_lab", "ccl_train", "tools", "benchmarks", "tests")


def _imports(path: str, package: str):
    """(line, module) of every import in a file, lazy ones included; relative names are resolved and
    given without the pack's own name (`..ccl_core.x` in nodes/ is `ccl_core.x`)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[:len(parts) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else [])) if base else PACK + ".."
                name = name[len(PACK) + 1:] if name.startswith(PACK + ".") else name
            yield node.lineno, name


def _offenders(folder: str, allowed):
    """Imports in ROOT/folder of a part of the pack other than `allowed`."""
    bad = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)
                package = ".".join([PACK] + os.path.dirname(rel).split(os.sep))
                for line, name in _imports(path, package):
                    top = name.split(".")[0]
                    if (top in PACK_PARTS or top.startswith(PACK)) and top not in allowed:
                        bad.append(f"{rel}:{line} imports {name}")
    return bad


def test_the_runtime_imports_nothing_from_the_research_packages():
    assert _offenders("ccl_core", {"ccl_core"}) == []
    assert _offenders("nodes", {"nodes", "ccl_core"}) == []


def test_the_training_library_imports_nothing_from_the_lab():
    assert _offenders("ccl_train", {"ccl_train", "ccl_core"}) == []


def test_the_checker_sees_a_lazy_research_import(tmp_path, monkeypatch):
    """The scan above must catch an import inside a function, relative or absolute."""
    import test_layout
    pkg = tmp_path / "ccl_core"
    pkg.mkdir()
    (pkg / "x.py").write_text("from . import model\n\ndef f():\n    from ccl_lab import world\n"
                              "    from ..ccl_train import train\n    import nodes.toyav\n")
    monkeypatch.setattr(test_layout, "ROOT", str(tmp_path))
    assert test_layout._offenders("ccl_core", {"ccl_core"}) == [
        "ccl_core/x.py:4 imports ccl_lab", "ccl_core/x.py:5 imports ccl_train", "ccl_core/x.py:6 imports nodes.toyav"]


def test_every_runtime_module_imports_with_the_research_packages_absent():
    """Import all of ccl_core (and the CLI's parser) with ccl_lab and ccl_train made unimportable."""
    code = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {RESEARCH!r}:
                    raise ImportError(f"{{name}} is research tooling, not part of the runtime")
        sys.meta_path.insert(0, Block())
        import ccl_core
        for m in pkgutil.walk_packages(ccl_core.__path__, "ccl_core."):
            importlib.import_module(m.name)
        from ccl_core.__main__ import main
        try:
            main(["generate", "--help"])
        except SystemExit as e:
            assert e.code == 0, e.code
        """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
