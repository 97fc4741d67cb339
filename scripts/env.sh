#!/usr/bin/env bash
# Create (once) the development environment .venv from the repo's own files.
# Development and CI pin the torch trio (constraints-dev.txt); the pack itself only sets lower bounds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CCL_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.ccl-env-$(cat requirements.txt requirements-dev.txt constraints-dev.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints-dev.txt torch torchvision torchaudio
  "$VENV/bin/python" -m pip install -q -c constraints-dev.txt -r requirements-dev.txt
  rm -f "$VENV"/.ccl-env-*
  touch "$stamp"
fi
