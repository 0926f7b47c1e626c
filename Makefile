# neuroncli: every target creates .venv on first use; nothing is installed by hand.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
# pytest-xdist workers: the machine has 2 cores.
JOBS ?= 2

.PHONY: install demo test test-all bench fuzz soak lint mutate clean

# The build backend, pinned: installed into .venv, then used from there (no build isolation),
# so a rebuild needs nothing but the venv.  pyproject.toml's [build-system] says why >= 70.1.
SETUPTOOLS := setuptools==84.2.1

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@# This machine's pip config lists a missing mirror; its per-package warnings are noise.
	set -o pipefail; { $(BIN)/pip install --disable-pip-version-check -q '$(SETUPTOOLS)' \
	  && $(BIN)/pip install --disable-pip-version-check -q --no-build-isolation \
	     --check-build-dependencies -e '.[cpu,test]'; } 2>&1 \
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

# Mutation testing (issue 17), not part of `make test`: mutmut from PyPI, one module at a time,
# each with only its own fast in-process tests (console-script tests run the installed package,
# not mutmut's copy, so they cannot kill a mutant and would only slow the run down).  Each module
# runs in its own scratch copy build/mutate/<name>/ with a generated setup.cfg, so its results
# stay (`cd build/mutate/counts && ../../../.venv/bin/mutmut show <mutant>`).  Every run starts
# afresh: mutmut 3.8 keeps old verdicts when only the tests changed.  MODULES=counts,dispatch
# picks some; MUTATE_JOBS=N workers (default 2, the machine's cores).
MUTMUT := mutmut==3.8.1
MUTATE_JOBS ?= $(JOBS)
# name = module under neuroncli/ : its tests (pytest node ids, comma separated)
MUTATE_TABLE := \
  counts=format/counts.py:tests/test_counts.py \
  fplacement=format/placement.py:tests/test_placement_rule.py \
  multicore=rewrite/multicore.py:tests/test_multicore_units.py,tests/test_placement_rule.py \
  rplacement=runtime/placement.py:tests/test_placement_layouts.py,tests/test_runtime_units.py,tests/test_placement_rule.py \
  dispatch=runtime/dispatch.py:tests/test_dispatch_units.py,tests/test_runtime_units.py \
  batching=runtime/batching.py:tests/test_batching_units.py,tests/test_runtime_units.py \
  instance=runtime/instance.py:tests/test_instance_units.py,tests/test_runtime_units.py \
  verify=runtime/verify.py:tests/test_verify_compare.py,tests/test_runtime_units.py \
  executable=format/executable.py:tests/test_runtime_units.py,tests/test_runtime_support.py \
  propose=partition/propose.py:tests/test_partition_propose.py,tests/test_partition_property.py \
  plan=partition/plan.py:tests/test_partition_plan.py \
  writer=savedmodel/writer.py:tests/test_crash_safety.py,tests/test_savedmodel_io.py \
  weights=compiler/weights.py:tests/test_weights_once.py
MODULES ?= all

mutate: $(STAMP)
	test -x $(BIN)/mutmut || $(BIN)/pip install --disable-pip-version-check -q '$(MUTMUT)'
	@set -e; root=$$PWD; for row in $(MUTATE_TABLE); do \
	  name=$${row%%=*}; rest=$${row#*=}; module=$${rest%%:*}; tests=$${rest#*:}; \
	  case ",$(MODULES)," in *",all,"*|*",$$name,"*) ;; *) continue ;; esac; \
	  dir=build/mutate/$$name; rm -rf $$dir; mkdir -p $$dir; \
	  cp -r neuroncli tests fixtures bench pyproject.toml $$dir/; \
	  { echo '[mutmut]'; echo 'source_paths = neuroncli'; \
	    echo "only_mutate = neuroncli/$$module"; echo 'also_copy ='; echo '  fixtures/'; \
	    echo '  bench/'; \
	    echo 'pytest_add_cli_args_test_selection ='; \
	    for t in $${tests//,/ }; do echo "  $$t"; done; } > $$dir/setup.cfg; \
	  echo "== $$name: neuroncli/$$module, tests $$tests (log $$dir/mutmut.log)"; \
	  (cd $$dir && nice $$root/$(BIN)/mutmut run --max-children $(MUTATE_JOBS) \
	     > mutmut.log 2>&1 || { tail -c 3000 mutmut.log; exit 1; }; \
	   $$root/$(BIN)/mutmut results > survivors.txt; \
	   tail -c 400 mutmut.log | tr '\r' '\n' | tail -n 1; cat survivors.txt); \
	done

clean:
	rm -rf build .venv
