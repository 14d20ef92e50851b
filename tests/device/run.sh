#!/usr/bin/env bash
# On the GPU machine, from the repository root: install the wheels carried in .whl/ (no network
# there), then run every lesson that can run in the full profile, writing into $OUT.
#
#   device run:  bash tests/device/run.sh          (carry: [".whl"], timeout_s: 570)
#   extra arguments go to gpu_check.py, e.g.  bash tests/device/run.sh --budget-s 300 00 02
set -uo pipefail
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
ls .whl/*.whl > /dev/null 2>&1 || { echo "no wheels in .whl/: run tests/device/download_wheels.sh first"; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl 2>&1 | tail -5
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv | tee "$out/nvidia-smi.csv"
python3 tests/device/gpu_check.py --out "$out" "$@"
