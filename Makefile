# irprune: the commands README.md gives, in one place.
PYTHON ?= python3

.PHONY: install install-bench test test-gpu example bench bench-quick bench-report clean

SUITE ?= seed

install:            ## install irprune and its test tools (CPU machine, no GPU needed)
	$(PYTHON) -m pip install -e ".[test]"
	@# The PyTorch converter's tests need torch; any torch >= 2.4 does, the CPU build is enough.
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "torch==2.13.0" || \
		echo "irprune: torch could not be installed; the PyTorch converter's tests will be skipped"

test:               ## the test suite; GPU tests skip with a reason where no GPU is present
	$(PYTHON) -m pytest -q

test-gpu:           ## on a GPU machine: the GPU tests only, results under $$OUT (or ./out)
	bash tools/gpu_check.sh

example:            ## the main job: compile a 90%-sparse 3x3 64->64 layer to PTX
	$(PYTHON) -c "import numpy as np; from irprune.reference import prune_random; np.save('w.npy', prune_random((64, 64, 3, 3), 0.9))"
	irprune compile --weights w.npy --input-shape 1,64,56,56 --padding 1 --emit ptx -o layer.ptx --stats
	@grep -c 'fma.rn.f32' layer.ptx | sed 's/^/fma.rn.f32 with an immediate weight: /'

install-bench:      ## the benchmark's extras (PyTorch for the baselines, matplotlib for the plots)
	$(PYTHON) -m pip install -e ".[bench]"

bench:              ## on a GPU machine: one suite (SUITE=seed|resnet50|mobilenet1x1|all) into bench-out/
	irprune bench --suite $(SUITE) --out bench-out

bench-quick:        ## on a GPU machine: a few layers, under two minutes
	irprune bench --quick --out bench-out

bench-report:       ## no GPU: redraw bench-out/tables.md and plots from bench-out/results.json
	irprune bench --report bench-out/results.json --out bench-out

clean:
	rm -rf build dist *.egg-info .pytest_cache w.npy layer.ptx out bench-out
