#!/usr/bin/env bash
# The test suite: sets up .venv if needed, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
VENV=${CCL_VENV:-.venv}
"$VENV/bin/python" -c "import torch, torchaudio; print('torch', torch.__version__, '| torchaudio', torchaudio.__version__)"
exec "$VENV/bin/python" -m pytest -q "$@"
