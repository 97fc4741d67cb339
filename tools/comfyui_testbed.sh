#!/usr/bin/env bash
# Set up a ComfyUI testbed for tests/test_comfy_integration.py from a ComfyUI checkout you already have
# (this script downloads no ComfyUI; it installs packages from PyPI with pip).
#
#   tools/comfyui_testbed.sh COMFYUI_DIR VENV [WORKDIR]
#
# COMFYUI_DIR is either upstream ComfyUI (0.3.x: main.py + requirements.txt) or ComfyUI LTS, the
# pip-installable fork (0.12.x: a `comfyui` console script, comfy/cmd/). VENV is created if missing,
# with the torch trio pinned in constraints-dev.txt installed first and kept (every pip call here is
# constrained by it). The pack is linked into custom_nodes/: COMFYUI_DIR's for upstream, WORKDIR's
# for LTS (its --cwd; default: VENV's sibling folder comfyui-lts-cwd). Prints the start command and
# the variables for the integration tests, which start their own server in a temporary folder.
set -euo pipefail

usage() { echo "usage: $0 COMFYUI_DIR VENV [WORKDIR]" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COMFY=$(cd "$1" && pwd) || { echo "error: ComfyUI folder $1 does not exist" >&2; exit 1; }
VENV=$(mkdir -p "$2" && cd "$2" && pwd)
PACK=ccl_av  # the pack's folder name in custom_nodes/ (tests/test_comfy_integration.py PACK_DIR)

# Which ComfyUI: the fork declares its console script in pyproject.toml and has the comfy/cmd package.
if grep -q '^comfyui = "comfy.cmd.main:entrypoint"' "$COMFY/pyproject.toml" 2>/dev/null && [ -d "$COMFY/comfy/cmd" ]; then
  KIND=lts
elif [ -f "$COMFY/main.py" ] && [ -f "$COMFY/requirements.txt" ]; then
  KIND=upstream
else
  echo "error: $COMFY is neither upstream ComfyUI (main.py + requirements.txt) nor ComfyUI LTS (comfy/cmd + a comfyui script in pyproject.toml)" >&2
  exit 1
fi
echo "ComfyUI at $COMFY: $KIND"

# The venv, torch first so that nothing after it chooses another build.
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/pip" install -c "$REPO/constraints-dev.txt")
"${PIP[@]}" torch torchvision torchaudio

if [ "$KIND" = upstream ]; then
  "${PIP[@]}" -r "$COMFY/requirements.txt" requests
  NODES="$COMFY/custom_nodes"
  START=("$VENV/bin/python" main.py --cpu --listen 127.0.0.1 --port 8188)
  START_IN=$COMFY
else
  # ComfyUI LTS 0.12.1 leaves these open and does not start with the newest releases: opentelemetry
  # after 1.27.0 / 0.48b0 needs protobuf 5 (the fork pins protobuf<5), and a newer processor-baggage
  # does not import with sdk 1.27; sentencepiece 0.2.1 and aio-pika<10 are what it was found to
  # install and run with.
  PINS=$(mktemp)
  trap 'rm -f "$PINS"' EXIT
  printf '%s\n' opentelemetry-{api,sdk,exporter-otlp,exporter-otlp-proto-grpc,exporter-otlp-proto-http,exporter-otlp-proto-common,proto,propagator-jaeger}==1.27.0 \
    opentelemetry-{distro,instrumentation,semantic-conventions,util-http,processor-baggage}==0.48b0 \
    opentelemetry-instrumentation-{aio-pika,requests,aiohttp-server,aiohttp-client,asyncio,urllib3}==0.48b0 \
    sentencepiece==0.2.1 'aio-pika<10' > "$PINS"
  "${PIP[@]}" -c "$PINS" -e "$COMFY"
  WORKDIR=$(mkdir -p "${3:-$(dirname "$VENV")/comfyui-lts-cwd}" && cd "${3:-$(dirname "$VENV")/comfyui-lts-cwd}" && pwd)
  mkdir -p "$WORKDIR"/{models,input,output}
  NODES="$WORKDIR/custom_nodes"
  START=("$VENV/bin/comfyui" --cwd "$WORKDIR" --cpu --listen 127.0.0.1 --port 8188)
  START_IN=$WORKDIR
fi
"${PIP[@]}" -r "$REPO/requirements.txt"  # the pack's own needs (lower bounds only)
"$VENV/bin/pip" show torch | grep -E '^(Name|Version)'

# Link the pack; a real folder of that name is someone else's and is left alone.
mkdir -p "$NODES"
if [ -e "$NODES/$PACK" ] && [ ! -L "$NODES/$PACK" ]; then
  echo "error: $NODES/$PACK exists and is not a link; move it away and run again" >&2
  exit 1
fi
ln -sfn "$REPO" "$NODES/$PACK"

cat <<EOF

Start ComfyUI with the pack (models in $START_IN/models, e.g. models/ccl/):
  cd $START_IN && ${START[*]}
Integration tests (they start their own server; npm ci --prefix tests/frontend first for the frontend test):
  COMFYUI_PATH=$COMFY COMFYUI_PYTHON=$VENV/bin/python .venv/bin/python -m pytest -s tests/test_comfy_integration.py
EOF
