# Neuron artifacts as make targets: compile -> verify -> auto-multicore -> inspect.
#
#   make -f examples/neuron.mk MODEL=path/to/saved_model INPUTS=inputs.npz OUT=build/neuron
#
# Each step is a file target, so make rebuilds only what changed.  The build fails when the
# compile leaves too little on Neuron (neuron-compile exits 3 below MIN_RATIO), when the
# compiled model's outputs differ from the original's (neuron-verify exits 1), or on any bad
# input (exit 1, one line saying what to fix).  Outputs are replaced atomically (--force).
BIN ?= .venv/bin
MODEL ?= fixtures/keras_dense
INPUTS ?= fixtures/keras_dense.inputs.npz
OUT ?= build/neuron
CORES ?= 4
MIN_RATIO ?= 0.5

.PHONY: neuron
neuron: $(OUT)/inspect.json

$(OUT)/compiled/saved_model.pb: $(MODEL)/saved_model.pb $(INPUTS)
	@mkdir -p $(OUT)
	$(BIN)/neuron-compile $(MODEL) $(OUT)/compiled --inputs $(INPUTS) \
	  --min-on-neuron-ratio $(MIN_RATIO) --force -q

$(OUT)/verify.json: $(OUT)/compiled/saved_model.pb
	$(BIN)/neuron-verify $(MODEL) $(OUT)/compiled --inputs $(INPUTS) --json > $@.tmp
	mv $@.tmp $@

$(OUT)/multicore/saved_model.pb: $(OUT)/compiled/saved_model.pb $(OUT)/verify.json
	$(BIN)/tf-neuron-auto-multicore $(OUT)/compiled --num_cores $(CORES) \
	  --new_model_dir $(OUT)/multicore --force -q

$(OUT)/inspect.json: $(OUT)/multicore/saved_model.pb
	$(BIN)/neuron-inspect $(OUT)/multicore --json > $@.tmp
	mv $@.tmp $@
