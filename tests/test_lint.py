"""ruff over the whole tree: the pack's own rules (pyproject [tool.ruff]) and exactly the check `comfy node
validate` runs before publishing to the Comfy Registry (exec S102, eval S307, one-line compound statements E702)."""

import importlib.util
import os
import subprocess
import sys

import pytest

from pack_loader import ROOT

REGISTRY_CHECK = ["--select", "S102,S307,E702"]  # comfy-cli's validate_node_for_publishing


def _ruff(*args):
    if importlib.util.find_spec("ruff") is None:
        message = "ruff is not installed: bash scripts/env.sh installs it from requirements-dev.txt"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI builds its environment from the repo's files: a missing linter is a bug
        pytest.skip(message)
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args, ROOT],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("args", [[], REGISTRY_CHECK], ids=["pyproject", "comfy-node-validate"])
def test_ruff_is_clean(args):
    run = _ruff(*args)
    assert run.returncode == 0, f"ruff check {' '.join(args)}:\n{run.stdout[-4000:]}{run.stderr[-2000:]}"
