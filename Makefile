# neuroncli: every target creates .venv on first use; nothing is installed by hand.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
# pytest-xdist workers: the machine has 2 cores.
JOBS ?= 2

.PHONY: install demo test test-all bench fuzz soak lint clean

# The build backend, pinned: installed into .venv, then used from there (no build isolation),
# so a rebuild needs nothing but the venv.  pyproject.toml's [build-system] says why >= 70.1.
SETUPTOOLS := setuptools==84.2.1

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@# This machine's pip config lists a missing mirror; its per-package warnings are noise.
	set -o pipefail; { $(BIN)/pip install --disable-pip-version-check -q '$(SETUPTOOLS)' \
	  && $(BIN)/pip install --disable-pip-version-check -q --no-build-isolation \
	     --check-build-dependencies -e '.[test]'; } 2>&1 \
	  | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	@# neuron-serve's gRPC stubs: --no-deps as AWS's docs say (the wheel would pull in the
	@# full tensorflow package next to tensorflow-cpu; grpcio comes with tensorflow-cpu).
	set -o pipefail; $(BIN)/pip install --disable-pip-version-check -q --no-deps \
	  'tensorflow-serving-api==2.21.*' 2>&1 \
	  | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	touch $(STAMP)

# The NeuronOp op library (tf.saved_model.load of compiled models), built once per source/TF.
install: $(STAMP)
	$(BIN)/python -m neuroncli.tfop

# compile, verify, auto-multicore, place, run, serve: each step prints its command.
demo: $(STAMP)
	examples/demo.sh build/demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -q -m ''

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# 100,000 mutated saved_model.pb files through the protobuf-only commands (fixed seed).
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz_savedmodel --cases 100000

# The runtime for 10 minutes, 4 threads over 3 models: calls, errors, resident memory.
soak: $(STAMP)
	$(BIN)/python bench/soak.py --minutes 10

lint: $(STAMP)
	$(BIN)/python -m compileall -q neuroncli tests bench
	$(BIN)/python -m pyflakes neuroncli tests bench

clean:
	rm -rf build .venv
