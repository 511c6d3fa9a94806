# irprune: the commands README.md gives, in one place.
PYTHON ?= python3

.PHONY: install test test-gpu example clean

install:            ## install irprune and its test tools (CPU machine, no GPU needed)
	$(PYTHON) -m pip install -e ".[test]"

test:               ## the test suite; GPU tests skip with a reason where no GPU is present
	$(PYTHON) -m pytest -q

test-gpu:           ## on a GPU machine: the GPU tests only, results under $$OUT (or ./out)
	bash tools/gpu_check.sh

example:            ## the main job: compile a 90%-sparse 3x3 64->64 layer to PTX
	$(PYTHON) -c "import numpy as np; from irprune.reference import prune_random; np.save('w.npy', prune_random((64, 64, 3, 3), 0.9))"
	irprune compile --weights w.npy --input-shape 1,64,56,56 --padding 1 --emit ptx -o layer.ptx --stats
	@grep -c 'fma.rn.f32' layer.ptx | sed 's/^/fma.rn.f32 with an immediate weight: /'

clean:
	rm -rf build dist *.egg-info .pytest_cache w.npy layer.ptx out
