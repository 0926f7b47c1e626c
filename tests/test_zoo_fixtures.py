"""The committed model zoo (``fixtures/zoo/``, made by ``fixtures/zoo/make_zoo.py``) through
every console script, the way a user would run them.

Each model: ``neuron-compile`` with defaults (batch 1) and with ``--inputs`` (batch 2, the
sample file), ``neuron-verify`` of each compiled model on inputs of its batch size (batch 1:
the first row of the sample; a static model is verified at a second batch size by compiling
it at that size, not by relying on dynamic batch), then ``tf-neuron-auto-multicore`` onto 2
cores and ``neuron-run`` round-robin over them.  ``hub_bert``'s sequence length is unknown:
its default compile must fail with the line naming ``--input-shape``/``--inputs``, and it is
compiled with ``--input-shape`` instead.

The operation counts below are what the partitioner decides today; they move when its
default op list does.  Recompute them with
``.venv/bin/neuron-compile fixtures/zoo/NAME /tmp/NAME --json`` (``ops_on_neuron``,
``ops_total``) and update the table after checking that the change is intended.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES, script

ZOO = FIXTURES / "zoo"
SEQUENCE = 32


@dataclass(frozen=True)
class ZooModel:
    """name: directory under fixtures/zoo; on_neuron/total/neuron_ops: operation counts and
    NeuronOps compiled with defaults (the same with --inputs); outputs: output key -> shape
    at batch 2; shape_flags: what the default compile lacks, when it cannot determine the
    shapes."""

    name: str
    on_neuron: int
    total: int
    neuron_ops: int
    outputs: dict
    shape_flags: tuple = ()


BERT_SHAPES = tuple(arg for key in ("padding_mask", "segment_ids", "token_ids")
                    for arg in ("--input-shape", f"{key}=1,{SEQUENCE}"))
MODELS = {m.name: m for m in (
    ZooModel("tfk_bn", 33, 40, 1, {"logits": [2, 3]}),
    ZooModel("tfk_two_inputs", 41, 52, 1, {"embedding": [2, 4], "score": [2, 1]}),
    ZooModel("tfk_mobilenetv2", 949, 956, 1, {"predictions": [2, 10]}),
    ZooModel("hub_bert", 407, 440, 8, {"pooled_output": [2, 64],
                                       "sequence_output": [2, SEQUENCE, 64]}, BERT_SHAPES),
    ZooModel("tf1_fused_bn", 20, 22, 1, {"logits": [2, 2]}),
    # The loop's frame (Enter/Merge/Switch/...) stays on the CPU, and the head after it is
    # below the minimum segment size.
    ZooModel("tf1_while", 0, 14, 0, {"y": [2, 3]}),
    ZooModel("tf1_strings", 8, 15, 1, {"probs": [2, 2]}),
)}
# The biggest model (956 operations, 1.7 MB of weights): make test-all only.
SLOW = {"tfk_mobilenetv2"}
PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
          for name in MODELS]


def _run(name: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEURON_RT_", "NEURON_SIM_", "NEURON_CC_"))}
    return subprocess.run([script(name), *args], capture_output=True, text=True, env=env,
                          timeout=600, stdin=subprocess.DEVNULL)


def _ok(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@dataclass(frozen=True)
class Compiled:
    model: ZooModel
    default_dir: Path     # batch 1
    inputs_dir: Path      # batch 2, from --inputs
    default_doc: dict
    inputs_doc: dict
    batch1_npz: Path
    batch2_npz: Path


@pytest.fixture(scope="module", params=PARAMS)
def compiled(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    model = MODELS[request.param]
    tmp = tmp_path_factory.mktemp(model.name)
    source, batch2 = ZOO / model.name, ZOO / f"{model.name}.inputs.npz"
    with np.load(batch2) as sample:
        first_rows = {key: sample[key][:1] for key in sample.files}
    batch1 = tmp / "batch1.npz"
    np.savez(batch1, **first_rows)
    default_doc = _ok(_run("neuron-compile", str(source), str(tmp / "default"), "--json",
                           *model.shape_flags))
    inputs_doc = _ok(_run("neuron-compile", str(source), str(tmp / "inputs"), "--json",
                          "--inputs", str(batch2)))
    return Compiled(model, tmp / "default", tmp / "inputs", default_doc, inputs_doc, batch1,
                    batch2)


def test_compile_counts(compiled: Compiled) -> None:
    model = compiled.model
    for doc in (compiled.default_doc, compiled.inputs_doc):
        assert (doc["ops_on_neuron"], doc["ops_total"]) == (model.on_neuron, model.total)
        assert doc["neuron_ops"] == model.neuron_ops
        assert doc["OnNeuronRatio"] == pytest.approx(model.on_neuron / model.total)


@pytest.mark.parametrize("which", ["default", "inputs"])
def test_verify_at_its_batch_size(compiled: Compiled, which: str) -> None:
    target, npz, batch = ((compiled.default_dir, compiled.batch1_npz, 1) if which == "default"
                          else (compiled.inputs_dir, compiled.batch2_npz, 2))
    doc = _ok(_run("neuron-verify", str(ZOO / compiled.model.name), str(target),
                   "--inputs", str(npz), "--json"))
    assert doc["passed"] is True
    shapes = {o["key"]: o["shape"] for o in doc["outputs"]}
    assert shapes == {key: [batch, *shape[1:]]
                      for key, shape in compiled.model.outputs.items()}


def test_auto_multicore_then_run(compiled: Compiled, tmp_path: Path) -> None:
    if not compiled.model.on_neuron:
        pytest.skip("no NeuronOp to replicate")
    tagged = tmp_path / "multicore"
    doc = _ok(_run("tf-neuron-auto-multicore", str(compiled.inputs_dir), "--num_cores", "2",
                   "--new_model_dir", str(tagged), "--json"))
    assert [meta["neuron_ops"] for meta in doc["meta_graphs"]] == [compiled.model.neuron_ops]
    run = _ok(_run("neuron-run", str(tagged), "--inputs", str(compiled.batch2_npz),
                   "--repeat", "4", "--instance-type", "inf2.xlarge", "--json"))
    calls = 2 * compiled.model.neuron_ops  # 4 inferences round-robin, one call per NeuronOp
    assert run["core_calls"] == {"0": calls, "1": calls}
    assert {k: v["shape"] for k, v in run["outputs"].items()} == compiled.model.outputs


def test_bert_defaults_name_the_missing_shape(tmp_path: Path) -> None:
    """As AWS's compile: the batch size alone cannot fix a sequence length."""
    result = _run("neuron-compile", str(ZOO / "hub_bert"), str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: --batch-size is not sufficient to determine the shape of input "
        "'padding_mask' (serving_default_padding_mask:0), (1,?): give its full shape with "
        "--input-shape padding_mask=1,N (N: your size), or example inputs with --inputs "
        "FILE.npz"]
    assert os.listdir(tmp_path) == []


def test_tf_keras_batchnorm_inputs_shape_pass() -> None:
    """The issue's reproduction: tf-keras' FusedBatchNormV3 is an Identity once grappler
    has run; the --inputs shape pass must not fetch its training-only outputs."""
    from neuroncli.compiler.freeze import freeze
    from neuroncli.savedmodel import read_saved_model, select_meta_graph, select_signature
    source = ZOO / "tfk_bn"
    meta = select_meta_graph(read_saved_model(source).saved_model, None)
    key, signature = select_signature(meta, None)
    frozen = freeze(str(source), meta, key, signature)
    batch_norms = [n for n in frozen.graph_def.node if n.op == "FusedBatchNormV3"]
    assert len(batch_norms) == 1  # the model still has what made the pass fail
