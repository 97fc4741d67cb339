"""ccl_core is plain torch: it imports and runs with no ComfyUI anywhere."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_no_comfy_import_in_source():
    for path in (ROOT / "ccl_core").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            assert not stripped.startswith(("import comfy", "from comfy", "import folder_paths")), f"{path}: {line}"


def test_imports_with_comfy_blocked():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', 'nodes'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ccl_core, ccl_core.model, ccl_core.checkpoint, ccl_core.guidance, ccl_core.sampling, ccl_core.ovi\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
