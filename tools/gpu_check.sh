#!/usr/bin/env bash
# Run irprune's GPU tests on the lent GPU machine in one go.
#
# Usage (on the GPU machine, from the repository root, with the numpy 2.4 wheel
# carried in .whl/ as docs/toolchain.md explains):
#   bash tools/gpu_check.sh
# Results go to $OUT (or ./out): pytest's log and JUnit XML.
set -u
OUT=${OUT:-out}
source "$(dirname "$0")/gpu_env.sh"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import numba, numba.cuda, llvmlite, numpy; print('numba', numba.__version__, 'llvmlite', llvmlite.__version__, 'numpy', numpy.__version__, 'gpu', numba.cuda.is_available())" | tee -a "$OUT/gpu.txt"
set -o pipefail
PYTHONUNBUFFERED=1 python3 -m pytest -q -m gpu tests/gpu --junitxml="$OUT/gpu-junit.xml" "$@" 2>&1 | tee "$OUT/gpu-tests.log"
