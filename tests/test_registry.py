"""Registry conventions: the published archive (the repository minus .comfyignore) still works, and
pyproject's [tool.comfy] names an icon the Registry can show."""

import fnmatch
import os
import shutil
import struct
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

import pytest

from pack_loader import node_classes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ignore_patterns():
    with open(os.path.join(ROOT, ".comfyignore")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns) -> bool:
    """gitignore's rules for the patterns .comfyignore uses: "dir/" drops a folder, others are globs
    on the whole path from the root."""
    return any(path.startswith(p) if p.endswith("/") else fnmatch.fnmatch(path, p) for p in patterns)


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the archive is made from the tracked files")
    return [p for p in out.splitlines() if os.path.isfile(os.path.join(ROOT, p))]


def test_comfyignore_drops_research_files_and_keeps_the_runtime():
    patterns = ignore_patterns()
    files = tracked_files()
    kept = [p for p in files if not ignored(p, patterns)]
    for p in patterns:  # every pattern still matches something: none is stale
        assert any(ignored(f, [p]) for f in files), f".comfyignore pattern {p!r} matches no tracked file"
    for needed in ("__init__.py", "pyproject.toml", "requirements.txt", "LICENSE", "README.md",
                   "ccl_core/assets/toyav_ccl.safetensors", "nodes/comfy_model.py", "workflows/toyav_t2av.json"):
        assert needed in kept, f"{needed} would be left out of the published archive"
    assert not any(p.startswith(("tests/", "benchmarks/", "ccl_train/", "ccl_lab/")) for p in kept)


def test_published_archive_imports_registers_every_node_and_generates(tmp_path):
    patterns = ignore_patterns()
    pack = tmp_path / "ccl_av"
    for p in tracked_files():
        if not ignored(p, patterns):
            (pack / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.join(ROOT, p), pack / p)
    script = f"""
import asyncio, importlib.util, sys
sys.path.insert(0, {os.path.join(ROOT, 'tests', 'comfy_stub')!r})
spec = importlib.util.spec_from_file_location("ccl_archive", {str(pack / '__init__.py')!r},
                                              submodule_search_locations=[{str(pack)!r}])
mod = importlib.util.module_from_spec(spec); sys.modules["ccl_archive"] = mod; spec.loader.exec_module(mod)
nodes = asyncio.run(mod.comfy_entrypoint().get_node_list())
sys.path.insert(0, {str(pack)!r})
from ccl_core.generate import generate
from ccl_core.toyav.embedded import load_pipeline
r = generate(load_pipeline(), "a red circle bouncing", steps=1)
print(len(nodes), tuple(r.frames.shape))
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    count, shape = run.stdout.split()[0], run.stdout.split(maxsplit=1)[1]
    assert int(count) == len(node_classes()), run.stdout
    assert shape.startswith("(32,"), run.stdout


def test_registry_icon_is_a_square_png_of_at_most_400_px():
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        comfy = tomllib.load(f)["tool"]["comfy"]
    assert comfy["requires-comfyui"].startswith(">=")
    prefix = "https://raw.githubusercontent.com/ccl-av/comfyui-ccl-av/main/"
    assert comfy["Icon"].startswith(prefix), comfy["Icon"]
    with open(os.path.join(ROOT, comfy["Icon"][len(prefix):]), "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert width == height <= 400
