# Each target bootstraps .venv on a fresh machine (idempotent: reinstalls only when pyproject changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test typecheck bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[export,int8,tools,test]' 'cuda-python>=12'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m effdet_deploy demo --output demo-output

test: $(STAMP)
	$(PY) -m pytest -q

# tensorrt-stubs is unpacked into build/stubs, not installed (see tools/prepare_trt_stubs.py).
TRT_STUBS := tensorrt-stubs==10.13.0.35.1

typecheck: $(STAMP)
	rm -rf build/wheels && $(PY) -m pip download -q --no-deps $(TRT_STUBS) -d build/wheels
	$(PY) tools/prepare_trt_stubs.py build/wheels/tensorrt_stubs-*.whl build/stubs
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) benchmarks/bench_eager.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_precision.py

clean:
	rm -rf $(VENV) demo-output build
