# Head3D: the two commands a user needs are `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: venv test demo bench gpu-check clean-venv

# Create the virtual environment, install the pins (runtime + test-only, requirements-dev.txt) and then this
# repository as an editable package (training, metrics, torch_utils, dnnlib importable from anywhere;
# pyproject.toml), once: re-run when any of these files changes. Both README commands work after it.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements-dev.txt
	$(VPY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# The test command (README command 2). CPU only; CUDA tests skip without a GPU. One pytest-xdist worker per core
# (at most 4), the slow tests first (tests/conftest.py), idle workers take queued tests from busy ones (worksteal).
test: $(STAMP)
	$(VPY) -m pytest -q --durations=15 -n auto --maxprocesses 4 --dist worksteal tests

# The main job (README command 1): the whole Head3D pipeline on the embedded synthetic world.
demo: $(STAMP)
	$(VPY) scripts/demo.py --outdir runs/demo

bench: $(STAMP)
	$(VPY) scripts/bench.py

gpu-check: $(STAMP)
	bash scripts/gpu_check.sh

clean-venv:
	rm -rf $(VENV)
