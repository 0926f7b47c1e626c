# neuroncli: every target creates .venv on first use; nothing is installed by hand.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
# pytest-xdist workers: the machine has 2 cores.
JOBS ?= 2

.PHONY: install demo test test-all bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf build/demo
	$(BIN)/neuron-compile fixtures/keras_dense build/demo/keras_dense_neuron

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -q -m ''

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

lint: $(STAMP)
	$(BIN)/python -m compileall -q neuroncli tests bench

clean:
	rm -rf build .venv
