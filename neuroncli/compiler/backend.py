"""The simulated Neuron backend: turn one segment into a program for a NeuronCore (imports TF).

For each segment (a GraphDef whose inputs are Placeholders):

1. **Shapes.** Every input needs a fully known shape; an unknown dimension is a reason to
   reject the segment (the real compiler needs static shapes too).
2. **Optimize.** Grappler's pruning, dependency and constant-folding passes, with the input
   shapes fixed: Identity chains vanish and inference-mode arithmetic on weights is folded.
   The result is the program's payload, what the simulator executes.
3. **Layout.** Channels-first convolutions and pools become channels-last between two
   Transposes (:mod:`neuroncli.compiler.layout`): CPU kernels support only that layout.
4. **Lower.** The segment must lower through XLA with static shapes (TensorFlow's
   ``jit_compile`` path, stopped at HLO), checked on the segment as given, concurrently with
   step 2 (so an op XLA cannot lower rejects the segment even where constant folding would
   have removed it: rare, and the segment then runs on the CPU, correctly).  An op XLA
   cannot lower is a real reason to reject.
   The check runs on a *weightless* copy (large constants replaced by splats of the same
   dtype and shape): lowering depends on shapes, not values, and this keeps it fast.
5. **Run once.** The payload executes once on zeros of its input shapes
   (:mod:`neuroncli.compiler.execcheck`): a program that cannot run is rejected now, not at
   its first inference.
6. **Emit.** :mod:`neuroncli.format.executable` packs the payload with its metadata.

A rejected segment returns ``CompiledSegment(ok=False, reason=...)``; the caller falls back to
CPU.  Functions here are thread-safe: segments compile in parallel (TF releases the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from neuroncli import proto
from neuroncli.compiler import execcheck, layout
from neuroncli.format import executable as exe
from neuroncli.graph import split_tensor
from neuroncli.lazy_tf import import_tensorflow

_SPLAT_BYTES = 1024  # constants larger than this are replaced by splats for the XLA check


@dataclass(frozen=True)
class BackendOptions:
    """How to compile.

    batch_size: compiled size of axis 0 (recorded in the program header).
    pipeline_cores: NeuronCores one copy of a program spans (``--neuroncore-pipeline-cores``).
    check_xla: lower every segment through XLA (disable only to debug the partitioner).
    """

    batch_size: int = 1
    pipeline_cores: int = 1
    check_xla: bool = True


@dataclass(frozen=True)
class SegmentInput:
    """One segment to compile: its GraphDef and the tensors at its boundary."""

    name: str
    graph_def: Any
    input_names: Sequence[str]
    input_dtypes: Sequence[int]
    input_shapes: Sequence[tuple | None]
    output_names: Sequence[str]
    header_extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. the batch note


@dataclass(frozen=True)
class CompiledSegment:
    """The outcome for one segment: a program, or the reason there is none."""

    name: str
    ok: bool
    reason: str = ""
    executable: bytes = b""
    header: exe.ExecutableHeader | None = None
    optimized: Any = field(default=None, repr=False)  # the payload GraphDef
    log: tuple[str, ...] = ()


def compile_segment(segment: SegmentInput, options: BackendOptions) -> CompiledSegment:
    """Compile one segment; never raises for a segment the backend cannot handle."""
    log = [f"segment {segment.name}: {len(segment.graph_def.node)} nodes"]
    for name, shape in zip(segment.input_names, segment.input_shapes):
        if shape is None or any(d is None for d in shape):
            return CompiledSegment(segment.name, False, f"input {name} has unknown shape "
                                   f"{_fmt_shape(shape)}: pass --batch-size or --input-shape",
                                   log=tuple(log))
    try:
        # Lowering needs shapes, not grappler's folding: it checks the segment as given, on
        # another thread while grappler optimizes it (TensorFlow releases the GIL).
        with ThreadPoolExecutor(max_workers=1) as pool:
            lowering = (pool.submit(lower_to_hlo, segment, segment.graph_def)
                        if options.check_xla else None)
            optimized = optimize(segment)
            log.append(f"grappler: {len(optimized.node)} nodes after pruning/constfold")
            converted = layout.to_channels_last(optimized)
            if converted:
                log.append(f"layout: {converted} channels-first op(s) run channels-last")
            flops = lowering.result() if lowering is not None else 0
        if lowering is not None:
            log.append(f"xla: lowered to HLO, {flops} flops")
        execcheck.run_once(optimized, segment.input_names, segment.input_dtypes,
                           segment.input_shapes, segment.output_names)
        log.append("run once on zeros: ok")
    except execcheck.ProgramRunError as exc:
        reason = f"the program does not run: {exc}"
        log.append(f"rejected: {reason}")
        return CompiledSegment(segment.name, False, reason, log=tuple(log))
    except Exception as exc:  # a TensorFlow error is the backend's verdict, not a crash
        reason = _first_line(exc)
        log.append(f"rejected: {reason}")
        return CompiledSegment(segment.name, False, reason, log=tuple(log))
    header = exe.ExecutableHeader(
        batch_size=options.batch_size, pipeline_cores=options.pipeline_cores,
        parameter_bytes=parameter_bytes(optimized), flops=flops,
        input_names=tuple(segment.input_names), output_names=tuple(segment.output_names),
        extra=dict(segment.header_extra))
    payload = optimized.SerializeToString(deterministic=True)
    blob = exe.pack(header, payload)
    log.append(f"executable: {len(blob)} bytes")
    return CompiledSegment(segment.name, True, executable=blob,
                           header=exe.read_header(blob)[0], optimized=optimized,
                           log=tuple(log))


def optimize(segment: SegmentInput) -> Any:
    """Grappler over the segment with its inputs and outputs preserved."""
    tf = import_tensorflow()
    from tensorflow.python.grappler import tf_optimizer
    meta = tf.compat.v1.MetaGraphDef()
    meta.graph_def.CopyFrom(segment.graph_def)
    keep = sorted({split_tensor(n)[0] for n in (*segment.input_names, *segment.output_names)})
    meta.collection_def["train_op"].node_list.value.extend(keep)
    config = tf.compat.v1.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.optimizers.extend(["pruning", "dependency", "constfold"])
    rewrite.min_graph_nodes = -1
    optimized = tf_optimizer.OptimizeGraph(config, meta, graph_id=segment.name.encode())
    return proto.as_graph_def(optimized)


def weightless(graph_def: Any, dtypes: frozenset[int] | None = None) -> Any:
    """A copy whose large constants (of ``dtypes``; None: any) are splats: same dtypes and
    shapes, kilobytes in size."""
    light = proto.GraphDef()
    light.versions.CopyFrom(graph_def.versions)
    if graph_def.HasField("library"):
        light.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        tensor = node.attr["value"].tensor if node.op == "Const" else None
        if (tensor is None or len(tensor.tensor_content) <= _SPLAT_BYTES
                or (dtypes is not None and tensor.dtype not in dtypes)):
            light.node.add().CopyFrom(node)
            continue
        splat = light.node.add(name=node.name, op="Const", device=node.device)
        splat.attr["dtype"].CopyFrom(node.attr["dtype"])
        value = splat.attr["value"].tensor
        value.dtype = tensor.dtype
        value.tensor_shape.CopyFrom(tensor.tensor_shape)
        _append_splat(value)
    return light


#: The TensorProto field holding one value of a dtype (the others hold theirs in int_val).
_SPLAT_FIELDS = {"DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT32": "int_val",
                 "DT_INT64": "int64_val", "DT_BOOL": "bool_val", "DT_HALF": "half_val",
                 "DT_BFLOAT16": "half_val"}


def _append_splat(tensor: Any) -> None:
    name = _SPLAT_FIELDS.get(proto.DataType.values_by_number[tensor.dtype].name
                             if tensor.dtype in proto.DataType.values_by_number else "",
                             "int_val")
    getattr(tensor, name).append(True if name == "bool_val" else 1)


def lower_to_hlo(segment: SegmentInput, graph_def: Any) -> int:
    """Lower (a weightless copy of) the segment to HLO; returns its estimated FLOPs."""
    tf = import_tensorflow()
    light = weightless(graph_def)

    def _import() -> None:
        tf.graph_util.import_graph_def(light, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    graph = wrapped.graph
    feeds = [graph.get_tensor_by_name(n) for n in segment.input_names]
    fetches = [graph.get_tensor_by_name(n) for n in segment.output_names]
    pruned = wrapped.prune(feeds, fetches)
    jit = tf.function(lambda *args: pruned(*args), jit_compile=True)
    args = [tf.zeros(shape, dtype=tf.dtypes.as_dtype(dtype))
            for shape, dtype in zip(segment.input_shapes, segment.input_dtypes)]
    jit.experimental_get_compiler_ir(*args)(stage="hlo")
    return estimate_flops(graph)


def estimate_flops(graph: Any) -> int:
    """2·MACs for matrix and convolution ops, one per output element for the rest."""
    total = 0
    for op in graph.get_operations():
        if op.type in ("Const", "Placeholder", "Identity", "NoOp") or not op.outputs:
            continue
        out = op.outputs[0].shape
        if not out.is_fully_defined():
            continue
        elems = out.num_elements() or 0
        if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMul"):
            k = op.inputs[0].shape[-1]
            total += 2 * elems * (int(k) if k is not None else 1)
        elif op.type in ("Conv2D", "DepthwiseConv2dNative", "Conv3D"):
            kernel = op.inputs[1].shape
            window = kernel[:-1].num_elements() if kernel.is_fully_defined() else 1
            if op.type == "DepthwiseConv2dNative":
                window = kernel[:-2].num_elements() if kernel.is_fully_defined() else 1
            total += 2 * elems * int(window or 1)
        else:
            total += elems
    return total


def parameter_bytes(graph_def: Any) -> int:
    """Bytes of the constants in a GraphDef: the device memory its weights take."""
    return sum(node.attr["value"].tensor.ByteSize() for node in graph_def.node
               if node.op == "Const")


def _fmt_shape(shape: tuple | None) -> str:
    if shape is None:
        return "(unknown rank)"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {line[:300]}"
