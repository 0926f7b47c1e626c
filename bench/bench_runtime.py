"""Benchmark of the simulated runtime against its goals; prints a table.

Usage::

    .venv/bin/python bench/bench_runtime.py [--quick]

``run()`` returns the rows (dicts with keys figure, goal, measured, ratio, passed):

1. **latency**: ResNet50 batch 1 through ``neuroncli.runtime.load`` vs the original frozen
   graph run directly in a default ``tf.compat.v1.Session``, side by side in one process,
   calls interleaved, medians compared.  The runtime sees one core (which therefore gets every
   host CPU, as the baseline does).  Goal: ratio <= 1.10.
2. **throughput**: ResNet50 batch 1, two caller threads, on an inf2.xlarge (two visible cores,
   one host thread each): two replicas vs one.  Goal: ratio >= 1.8.
3. **host memory**: resident memory above the process baseline of a 4-replica ResNet50 vs a
   1-replica one (inf1.xlarge), each in a fresh child process.  Goal: ratio <= 1.25.
4. **dispatch overhead**: the keras_dense fixture (one NeuronOp), compiled through ``load()``
   minus the original frozen graph in a Session, per call.  Goal: under 1 ms.

Models come from tests/zoo.py (built and cached under build/zoo) and are compiled into a
temporary directory.  The machine's other load shows up in the numbers: run it on a quiet host.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Before anything (the compiler included) creates a TensorFlow device: every session then owns
# its intra-op threads, which is what gives each simulated core its own share of the host.
os.environ.setdefault("TF_OVERRIDE_GLOBAL_THREADPOOL", "1")

import numpy as np  # noqa: E402

import timing  # noqa: E402
from table import report, row  # noqa: E402

ZOO = Path(os.environ.get("NEURONCLI_ZOO", ROOT / "build" / "zoo"))


def _compile(model_dir: Path, out_root: Path, batch_size: int = 1) -> Path:
    import neuroncli.saved_model
    target = out_root / f"{model_dir.name}_neuron"
    if not (target / "saved_model.pb").is_file():
        neuroncli.saved_model.compile(model_dir, target, batch_size=batch_size)
    return target


def _frozen_session(model_dir: Path) -> tuple[Callable[[dict], Any], dict]:
    """The original model's frozen graph in a default Session: (call, input names)."""
    from neuroncli.compiler.freeze import freeze
    from neuroncli.runtime.host import tensorflow
    from neuroncli.savedmodel import read_saved_model, select_meta_graph, select_signature
    tf = tensorflow()
    meta_graph = select_meta_graph(read_saved_model(model_dir).saved_model)
    key, signature = select_signature(meta_graph)
    frozen = freeze(str(model_dir), meta_graph, key, signature)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(frozen.graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    fetches = {k: graph.get_tensor_by_name(v) for k, v in frozen.outputs.items()}
    feeds = {k: graph.get_tensor_by_name(v) for k, v in frozen.inputs.items()}

    def call(inputs: dict) -> Any:
        return session.run(fetches, {feeds[k]: v for k, v in inputs.items()})
    return call, feeds


def latency(compiled: Path, original: Path, rounds: int) -> dict:
    import neuroncli.runtime as rt
    model = rt.load(compiled, runtime=rt.NeuronRuntime("inf2.xlarge", visible_cores="0"))
    baseline, _ = _frozen_session(original)
    x = {"image": np.random.default_rng(0).standard_normal((1, 224, 224, 3), np.float32)}
    medians = timing.interleaved({"load": lambda: model(x), "tf": lambda: baseline(x)}, rounds,
                                 warmup=3)
    model.unload()
    ratio = medians["load"] / medians["tf"]
    return row("ResNet50 b1 latency, load() vs frozen graph in TF", "ratio <= 1.10",
                f"{medians['load'] * 1e3:.1f} ms vs {medians['tf'] * 1e3:.1f} ms", ratio,
                ratio <= 1.10)


def _throughput(model: Any, x: dict, seconds: float, threads: int = 2) -> float:
    model(x)
    return timing.throughput([lambda: model(x)] * threads, seconds)


def throughput(compiled: Path, seconds: float, rounds: int = 3) -> dict:
    """Alternate short rounds of the 1-copy and the 2-copy model (both loaded): the host's
    other load then hits both alike; medians of the rounds are compared."""
    import neuroncli.runtime as rt
    runtime = rt.NeuronRuntime("inf2.xlarge", visible_cores="0-1")
    x = {"image": np.random.default_rng(0).standard_normal((1, 224, 224, 3), np.float32)}
    models = {1: rt.load(compiled, runtime=runtime, start_nc=0, nc_count=1),
              2: rt.load(compiled, runtime=runtime, start_nc=0, nc_count=2)}
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for copies, model in models.items():
            rates[copies].append(_throughput(model, x, seconds / rounds))
    for model in models.values():
        model.unload()
    one, two = float(np.median(rates[1])), float(np.median(rates[2]))
    ratio = two / one
    return row("ResNet50 b1 throughput, 2 cores vs 1 (2 caller threads)", "ratio >= 1.8",
                f"{two:.2f}/s vs {one:.2f}/s", ratio, ratio >= 1.8)


_MEMORY_CHILD = """
import json, sys, numpy as np
import neuroncli.runtime as rt
from neuroncli.runtime.host import tensorflow
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
tensorflow()
runtime = rt.NeuronRuntime('inf1.xlarge')
base = rss()
model = rt.load(sys.argv[1], runtime=runtime, nc_count=int(sys.argv[2]))
x = np.random.default_rng(0).standard_normal((1, 224, 224, 3), np.float32)
for _ in range(8):
    model(image=x)
print(json.dumps({'base': base, 'loaded': rss(), 'replicas': len(model.replicas)}))
"""


def host_memory(compiled: Path) -> dict:
    used = {}
    for copies in (1, 4):
        out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(compiled), str(copies)],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        data = json.loads(out.stdout.strip().splitlines()[-1])
        assert data["replicas"] == copies, data
        used[copies] = data["loaded"] - data["base"]
    ratio = used[4] / used[1]
    return row("ResNet50 host memory above baseline, 4 replicas vs 1", "ratio <= 1.25",
                f"{used[4] / 2**20:.0f} MiB vs {used[1] / 2**20:.0f} MiB", ratio,
                ratio <= 1.25)


def dispatch_overhead(compiled: Path, original: Path, rounds: int) -> dict:
    import neuroncli.runtime as rt
    model = rt.load(compiled, runtime=rt.NeuronRuntime("inf2.xlarge"))
    baseline, _ = _frozen_session(original)
    with np.load(ROOT / "fixtures" / "keras_dense.inputs.npz") as data:
        x = {k: data[k][:1] for k in data.files}
    medians = timing.interleaved({"load": lambda: model(x), "tf": lambda: baseline(x)}, rounds,
                                 warmup=3)
    model.unload()
    overhead_ms = (medians["load"] - medians["tf"]) * 1e3 / max(1, len(model.programs))
    return row("dispatch overhead per NeuronOp (tiny Dense), load() - TF",
                "< 1 ms", f"{overhead_ms:.3f} ms ({medians['load'] * 1e3:.3f} vs "
                f"{medians['tf'] * 1e3:.3f} ms)", overhead_ms, overhead_ms < 1.0)


def run(quick: bool = False) -> list[dict]:
    """Every figure, in order (see module doc).  ``quick`` shortens the timed loops."""
    from tests import zoo
    resnet = zoo.build("resnet50", ZOO)
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        out = Path(tmp)
        resnet_neuron = _compile(resnet, out)
        dense_neuron = _compile(ROOT / "fixtures" / "keras_dense", out)
        return [
            latency(resnet_neuron, resnet, rounds=10 if quick else 30),
            throughput(resnet_neuron, seconds=4.0 if quick else 12.0),
            host_memory(resnet_neuron),
            dispatch_overhead(dense_neuron, ROOT / "fixtures" / "keras_dense",
                              rounds=200 if quick else 2000),
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timed loops")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    return report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    sys.exit(main())
