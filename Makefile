# Two entry points for a fresh machine: `make bench` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# The default job: the two original models against three index types, on the generated
# COCO-format sample, in Milvus Lite. It ends with a comparison report.
MODELS ?= vgg16,resnet50
INDEXES ?= FLAT,IVF_FLAT,HNSW

.PHONY: setup bench test gate clean browser fashion-mnist

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "bench needs Python 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,server]'
	@touch $@

bench: setup
	$(PY) -m bench -m model=$(MODELS) index=$(INDEXES)

test: setup
	$(PY) -m pytest

gate: setup fashion-mnist
	$(PY) -m bench.gate

clean:
	rm -rf reports/runs reports/multirun reports/cache reports/milvus_lite.db data models/*.onnx models/*.json

# Regression gate helpers. `make baseline` re-measures reports/baseline/ on purpose;
# commit the result together with the change that explains it.
.PHONY: baseline benchmarks

baseline: setup fashion-mnist
	$(PY) -m bench.gate --update-baseline

# Hot-path micro-benchmarks, saved per machine (CPU model + cores, not just OS/Python) and failed
# on a median slowdown beyond 25 % against that machine's previous saved run. The first run on a
# machine has nothing to compare with, and pytest-benchmark refuses --benchmark-compare-fail then.
BENCH_STORAGE = .benchmarks/$(shell $(PY) -m bench.gate --print-machine-key)
benchmarks: setup
	$(PY) -m pytest tests/benchmarks --benchmark-enable --benchmark-autosave \
		--benchmark-storage=file://$(BENCH_STORAGE) \
		$$(ls $(BENCH_STORAGE)/*/*.json >/dev/null 2>&1 && echo --benchmark-compare --benchmark-compare-fail=median:25%)

# Headless Chromium for the report's browser test (tests/test_report.py), from Debian's `chromium`
# package: installed only when missing (so a second call is a no-op), quietly, as root or via sudo.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium (apt) for the report's browser test"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@chromium --version 2>/dev/null | head -n 1

# Real labelled images for the quality tests (tests/test_fashion_quality.py) and the gate's trained run:
# Debian's `dataset-fashion-mnist` (Zalando's Fashion-MNIST, 30 MB, in /usr/share/datasets/fashion-mnist),
# installed only when missing, quietly, as root or via sudo.
FASHION_MNIST_DIR = /usr/share/datasets/fashion-mnist
fashion-mnist:
	@[ -f $(FASHION_MNIST_DIR)/t10k-images-idx3-ubyte.gz ] || { \
		echo "installing dataset-fashion-mnist (apt) for the quality tests and the gate"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
	@ls $(FASHION_MNIST_DIR)
