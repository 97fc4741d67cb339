#!/usr/bin/env bash
# Retrain the embedded ToyAV model from scratch on the CPU: autoencoders and text encoder, then the
# CCL model in three stages (video tower on t2v, audio tower on t2a, joint with the DCR mix), then
# its finish: a fine-tune with i2av and extend in the mix on clips it never saw (train_embedded.FINISH).
# Writes into a copy of the assets first and replaces the shipped files only when everything is done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
PY=${CCL_VENV:-.venv}/bin/python
out=${1:-runs/retrain}
mkdir -p "$out/assets"
"$PY" -m ccl_lab.train_autoencoders --out "$out/assets/" --report "$out/autoencoders.json"
"$PY" -m ccl_lab.train_embedded --assets "$out/assets" --run-dir "$out/model" --out "$out/base.safetensors"
"$PY" -m ccl_lab.train_embedded --finish --init "$out/base.safetensors" --assets "$out/assets" \
    --run-dir "$out/finish" --out "$out/assets/toyav_ccl.safetensors"
echo "done: new files in $out/assets/ (copy them into ccl_core/assets/ to ship them)"
