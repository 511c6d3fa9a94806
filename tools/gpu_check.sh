#!/usr/bin/env bash
# Run irprune's GPU tests on the lent GPU machine in one go.
#
# Usage (on the GPU machine, from the repository root, with the numpy 2.4 wheel
# carried in .whl/ as docs/toolchain.md explains):
#   bash tools/gpu_check.sh
# Results go to $OUT (or ./out): pytest's log and JUnit XML.
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/pip.log" 2>&1 || cat "$OUT/pip.log"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import numba, numba.cuda, llvmlite, numpy; print('numba', numba.__version__, 'llvmlite', llvmlite.__version__, 'numpy', numpy.__version__, 'gpu', numba.cuda.is_available())" | tee -a "$OUT/gpu.txt"
set -o pipefail
PYTHONUNBUFFERED=1 python3 -m pytest -q -m gpu tests/gpu --junitxml="$OUT/gpu-junit.xml" "$@" 2>&1 | tee "$OUT/gpu-tests.log"
