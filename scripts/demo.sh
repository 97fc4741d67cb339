#!/usr/bin/env bash
# First run: set up .venv (once) and generate a demo clip with sound with the embedded ToyAV model.
# Usage: bash scripts/demo.sh ["a blue square sliding"]   -> writes demo.mp4 (or demo-N.mp4, never overwriting)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
VENV=${CCL_VENV:-.venv}
prompt=${1:-"a red circle bouncing"}
out=demo.mp4
n=1
while [ -e "$out" ]; do out="demo-$n.mp4"; n=$((n + 1)); done
exec "$VENV/bin/python" -m ccl_core generate --prompt "$prompt" --out "$out"
