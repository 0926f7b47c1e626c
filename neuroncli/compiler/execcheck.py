"""Run each compiled program once, at compile time, on synthetic inputs (imports TF).

A program the compiler accepts must run: a kernel missing on the CPU (a data format, a dtype),
a shape the lowering accepted but a kernel refuses, would otherwise surface at the first
inference.  :func:`run_once` executes the program's payload exactly as the simulated core
will, but with grappler switched off entirely, so that nothing a session rewrites for us
(layout, fusions) hides a graph that another host, or the C++ NeuronOp kernel running the
payload through TensorFlow's C API, could not execute.

Inputs are zeros of the compiled shapes and dtypes (valid indices, valid sizes).  Floating
point weights larger than a kilobyte are splats of 1 (kernels depend on shapes, not on
weight values, and the splat keeps the check fast); integer constants keep their values,
since they can be indices or shapes.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from neuroncli.lazy_tf import import_tensorflow
from neuroncli.proto.dtypes import dtype_enum

# float, double, half, bfloat16: weights whose values no kernel depends on
_FLOAT_DTYPES = frozenset(dtype_enum(n) for n in ("DT_FLOAT", "DT_DOUBLE", "DT_HALF",
                                                  "DT_BFLOAT16"))


class ProgramRunError(RuntimeError):
    """The program did not run; the message is TensorFlow's first line."""


def run_once(payload: Any, input_names: Sequence[str], input_dtypes: Sequence[int],
             input_shapes: Sequence[tuple], output_names: Sequence[str]) -> None:
    """Execute ``payload`` (a GraphDef) once; raises :class:`ProgramRunError` on failure."""
    from neuroncli.compiler.backend import weightless
    tf = import_tensorflow()
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.graph_util.import_graph_def(weightless(payload, _FLOAT_DTYPES), name="")
        feeds = {graph.get_tensor_by_name(name): _zeros(tf, dtype, shape)
                 for name, dtype, shape in zip(input_names, input_dtypes, input_shapes)}
        fetches = [graph.get_tensor_by_name(name) for name in output_names]
        with tf.compat.v1.Session(graph=graph, config=_config(tf)) as session:
            session.run(fetches, feeds)
    except Exception as exc:  # TensorFlow's verdict, whatever its type
        raise ProgramRunError(f"{type(exc).__name__}: {_first_line(exc)[:300]}") from exc


def _first_line(exc: BaseException) -> str:
    """The kernel's own words: skip TensorFlow's "Graph execution error:" preamble."""
    text = str(getattr(exc, "message", None) or exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Graph execution error", "Detected at"))]
    return lines[0] if lines else ""


def _zeros(tf: Any, dtype: int, shape: tuple) -> np.ndarray:
    return np.zeros(tuple(shape), dtype=tf.dtypes.as_dtype(dtype).as_numpy_dtype)


def _config(tf: Any) -> Any:
    """One thread each (a check, not a benchmark: segments compile in parallel already) and
    no grappler: the payload is run as written."""
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1,
                                      inter_op_parallelism_threads=1,
                                      use_per_session_threads=True)
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config
