# Sourced by the tools/gpu_*.sh scripts on the lent GPU machine: numba-cuda there
# imports only with the numpy 2.4 wheel carried in .whl/ (docs/toolchain.md), and
# irprune is installed from this checkout without touching the machine's packages.
OUT=${OUT:-.}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/pip.log" 2>&1 || cat "$OUT/pip.log"
