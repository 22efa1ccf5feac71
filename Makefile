# Each target bootstraps .venv on a fresh machine (idempotent: reinstalls only when pyproject changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Jetson: JetPack's TensorRT is a system package, so the venv must see system site-packages there.
VENV_FLAGS ?= $(if $(wildcard /etc/nv_tegra_release),--system-site-packages,)

.PHONY: demo test test-integration typecheck bench gpu-check clean dist

# x86_64 Linux: a real tritonserver for serve and its tests (the nvidia-pytriton wheel of the [serve] extra). Its
# numpy<2 pin would downgrade this venv, so the wheel goes in --no-deps and its python backend stub gets numpy<2
# in a folder of its own (STUB_SITE in effdet_deploy/triton_server.py).
$(STAMP): pyproject.toml Makefile
	@echo "setting up $(VENV) (first time: a few minutes; again only when pyproject.toml or the Makefile change)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	@echo "[setup 1/5] pip"
	$(PY) -m pip install -q --upgrade pip
	@echo "[setup 2/5] torch 2.13.0 (CPU wheel)"
	$(PY) -m pip install -q torch==2.13.0
	@echo "[setup 3/5] this project + its export, int8 (ModelOpt), tools, video and test extras"
	$(PY) -m pip install -q -e '.[export,int8,tools,video,test]'
	@echo "[setup 4/5] cuda-python matching the TensorRT wheel, if any"
	spec="$$($(PY) tools/cuda_python_spec.py)" && { test -z "$$spec" || $(PY) -m pip install -q "$$spec"; }
	@echo "[setup 5/5] Triton server and client (x86_64 Linux)"
	if [ "$$(uname -s)-$$(uname -m)" = Linux-x86_64 ]; then $(PY) -m pip install -q 'tritonclient[grpc,http]>=2.40' \
	    && $(PY) -m pip install -q --no-deps 'nvidia-pytriton==0.7.0' \
	    && $(PY) -m pip install -q --no-deps --upgrade --target $(VENV)/triton-stub-site 'numpy>=1.24,<2'; fi
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m effdet_deploy demo --output demo-output

# The fast tier (<= 10 min on 2 cores); the integration tier (pip into a fresh venv, D0 at 512 calibrations) is
# its own target, which .ci/run runs too.
# pytest's default output: each test file's name, its dots and the share done so far
test: $(STAMP)
	$(PY) -m pytest -m "not integration"

test-integration: $(STAMP)
	$(PY) -m pytest -m integration

# tensorrt-stubs is unpacked into build/stubs, not installed (see tools/prepare_trt_stubs.py); cuda.bindings
# is typed by typings/. tools/typecheck.py: mypy, >= 97% typed expressions per TensorRT/CUDA module, misuse check.
# cuda-python above (tools/cuda_python_spec.py): the CUDA major of an installed TensorRT wheel ([trt-cu13] keeps
# cuda-python 13), none over an existing cuda-python (JetPack), else 12.x, the major of the default [trt-cu12].
TRT_STUBS := tensorrt-stubs==10.13.0.35.1

typecheck: $(STAMP)
	rm -rf build/wheels && $(PY) -m pip download -q --no-deps $(TRT_STUBS) -d build/wheels
	$(PY) tools/prepare_trt_stubs.py build/wheels/tensorrt_stubs-*.whl build/stubs
	$(PY) tools/typecheck.py

# Needs TensorRT + cuda-python of one CUDA major (pip install -e '.[trt-cu12]', or JetPack's TensorRT) and a GPU:
# builds, compares and times the 12 shapes_d0 engines, runs the cuda/tensorrt test tiers, writes gpu-check/report.md.
# Without them: one line naming what is missing, exit 2. On Jetson (aarch64, no onnxruntime-gpu wheel on PyPI) the
# [export] extra takes the CPU onnxruntime; engines are compared with ONNX Runtime only where one imports.
gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py --output gpu-check

# A wheel of this project, dist/efficientdet_deploy-VERSION-py3-none-any.whl, to pip install elsewhere (extras as
# usual: 'WHEEL[export]'). Needs only a Python with pip, no .venv: pip builds it in an isolated environment.
# build/lib goes first: setuptools reuses it, and a module deleted here would otherwise stay in the wheel.
DIST_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))

dist:
	rm -rf dist build/lib
	$(DIST_PY) -m pip wheel -q --no-deps . -w dist
	@ls dist/*.whl

bench: $(STAMP)
	$(PY) benchmarks/bench_eager.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_nms_tail.py
	$(PY) benchmarks/bench_precision.py

clean:
	rm -rf $(VENV) demo-output build
