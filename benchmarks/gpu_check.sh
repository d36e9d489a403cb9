#!/usr/bin/env bash
# The prepared GPU check: run it once on a machine with a GPU; it finishes within ~8 minutes.
#
#   bash benchmarks/gpu_check.sh                 # report in gpu_check/ (gpu_check.json, gpu_check.md)
#   bash benchmarks/gpu_check.sh --out DIR --full-grid
#   bash benchmarks/gpu_check.sh --tiny          # tiny models on the CPU: checks the script itself
#
# Sections not started within --budget-s (default 480 s) are skipped and reported as skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
args=("$@")
[[ " $* " == *" --out "* ]] || args+=(--out gpu_check)
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
exec python benchmarks/gpu_check.py "${args[@]}"
