"""Fix the signature inputs' shapes and annotate every tensor's dtype and shape (imports TF).

Shapes come, in order of precedence, from real inputs (``--inputs FILE.npz`` /
``model_feed_dict``), explicit shapes (``--input-shape NAME=1,224,224,3`` /
``model_shape_feed_dict``), and ``--batch-size`` for an unknown leading dimension.  Validation
(:func:`resolve_input_shapes`) is protobuf-only so bad flags fail before TensorFlow loads;
:func:`annotate` runs TensorFlow's shape inference over the frozen graph with those shapes.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from neuroncli.compiler.sandbox import side_effect_free
from neuroncli.errors import UserError
from neuroncli.graph import Graph, split_tensor

Shape = tuple


def signature_shapes(signature: Any) -> dict[str, Shape | None]:
    """Signature key -> declared shape (``None`` dims unknown; ``None`` for unknown rank)."""
    shapes: dict[str, Shape | None] = {}
    for key in sorted(signature.inputs):
        shape = signature.inputs[key].tensor_shape
        shapes[key] = None if shape.unknown_rank else tuple(
            None if d.size < 0 else int(d.size) for d in shape.dim)
    return shapes


def _lookup_key(name: str, signature: Any, source: str) -> str:
    if name in signature.inputs:
        return name
    for key in sorted(signature.inputs):  # also accept the tensor or node name
        tensor = signature.inputs[key].name
        if name in (tensor, split_tensor(tensor)[0]):
            return key
    known = ", ".join(sorted(signature.inputs)) or "none"
    raise UserError(f"{source} names {name!r}, which is not an input of the signature; "
                    f"its inputs are: {known}")


def _check_feed_dtype(key: str, array: Any, dtype: int) -> None:
    """The rule calls use (:func:`neuroncli.runtime.inputs.convert`): strings for string
    inputs, numbers castable with numpy's ``same_kind`` rule otherwise."""
    import numpy as np

    from neuroncli.proto.dtypes import DT_STRING, numpy_dtype
    got = np.asarray(array).dtype
    if dtype == DT_STRING:
        if got.kind not in "USO":
            raise UserError(f"--inputs gives string input {key!r} {got} values: store "
                            "strings (bytes) for it")
        return
    want = numpy_dtype(dtype)
    if got.kind in "USO" or not np.can_cast(got, want, "same_kind"):
        raise UserError(f"--inputs gives input {key!r} {got} values but the model takes "
                        f"{want}: save it with .astype({want.name})")


def _merge(key: str, declared: Shape | None, given: Sequence[int], source: str) -> Shape:
    given = tuple(int(d) for d in given)
    if any(d < 0 for d in given):
        raise UserError(f"{source} for input {key!r} has a negative dimension {given}: "
                        "dimensions are sizes, 1 or more")
    if declared is not None:
        if len(declared) != len(given):
            raise UserError(f"{source} gives input {key!r} {len(given)} dimensions {given}, "
                            f"but the model declares {len(declared)}: {declared}: give "
                            "every declared dimension")
        for want, got in zip(declared, given):
            if want is not None and want != got:
                raise UserError(f"{source} gives input {key!r} shape {given}, which "
                                f"contradicts the model's declared shape {declared}: keep "
                                "the declared sizes (None is free)")
    return given


def resolve_input_shapes(signature: Any, *, batch_size: int | None = 1,
                         shape_feed: Mapping[str, Sequence[int]] | None = None,
                         feed: Mapping[str, Any] | None = None) -> dict[str, Shape | None]:
    """The shape each signature input is compiled for (unknown dims stay ``None``)."""
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer, got {batch_size}")
    shapes = signature_shapes(signature)
    for name, value in (shape_feed or {}).items():
        key = _lookup_key(name, signature, "--input-shape")
        shapes[key] = _merge(key, shapes[key], value, "--input-shape")
    fed = set()
    for name, array in (feed or {}).items():
        key = _lookup_key(name, signature, "--inputs")
        _check_feed_dtype(key, array, signature.inputs[key].dtype)
        shapes[key] = _merge(key, shapes[key], getattr(array, "shape", ()), "--inputs")
        fed.add(key)
    missing = sorted(set(signature.inputs) - fed) if feed is not None else []
    if missing:  # the feed is run through the model (AWS's model_feed_dict): all or nothing
        raise UserError(f"--inputs lacks input(s) {', '.join(map(repr, missing))}: give every "
                        f"signature input ({', '.join(sorted(signature.inputs))}) a key")
    for key, shape in shapes.items():
        if shape and shape[0] is None and batch_size is not None:
            shapes[key] = (batch_size,) + tuple(shape[1:])
    if batch_size is not None:
        _check_determined(signature, shapes)
    return shapes


def _check_determined(signature: Any, shapes: Mapping[str, Shape | None]) -> None:
    """Refuse, before any work, an input whose shape the batch size alone leaves open (a
    sequence length, an image size, an unknown rank), as AWS's compile does ("batch_size is
    not sufficient to determine the shape of input tensor"): compiled with unknown sizes,
    every segment it feeds would fall back to the CPU."""
    for key in sorted(shapes):
        shape = shapes[key]
        if shape is not None and all(d is not None for d in shape):
            continue
        shown = "unknown rank" if shape is None else \
            "(" + ",".join("?" if d is None else str(d) for d in shape) + ")"
        example = "1,..." if shape is None else \
            ",".join("N" if d is None else str(d) for d in shape)
        raise UserError(f"--batch-size is not sufficient to determine the shape of input "
                        f"{key!r} ({signature.inputs[key].name}), {shown}: give its full "
                        f"shape with --input-shape {key}={example} (N: your size), or "
                        "example inputs with --inputs FILE.npz")


def set_placeholder_shapes(graph_def: Any, tensors: Mapping[str, str],
                           shapes: Mapping[str, Shape | None]) -> None:
    """Write the resolved shapes into the frozen graph's Placeholder nodes (in place)."""
    by_node = {split_tensor(tensors[k])[0]: shapes[k] for k in tensors if k in shapes}
    for node in graph_def.node:
        shape = by_node.get(node.name)
        if node.op != "Placeholder" or shape is None:
            continue
        attr = node.attr["shape"].shape
        attr.Clear()
        for dim in shape:
            attr.dim.add(size=-1 if dim is None else dim)


def annotate(graph: Graph, graph_def: Any, feed: Mapping[str, Any] | None = None) -> None:
    """Fill ``output_dtypes``/``output_shapes`` of every IR node using TensorFlow.

    With ``feed`` (placeholder tensor name -> array), tensors whose shape static inference
    leaves unknown are computed once on those inputs and take their real shapes, as AWS's
    ``model_feed_dict`` does.
    """
    tf = import_tf()
    tf_graph = tf.Graph()
    if not feed:  # static inference needs shapes, not values: import no weights (4x faster)
        from neuroncli.compiler.backend import weightless
        graph_def = weightless(graph_def)
    with tf_graph.as_default():
        # proto classes are TensorFlow's own (see neuroncli.proto): no re-serialization
        tf.graph_util.import_graph_def(graph_def, name="")
    observed = _observed_shapes(tf, tf_graph, feed) if feed else {}
    for op in tf_graph.get_operations():
        node = graph.nodes.get(op.name)
        if node is None:
            continue
        node.output_dtypes = [int(t.dtype.as_datatype_enum) for t in op.outputs]
        node.output_shapes = [observed.get(t.name, _as_tuple(t.shape)) for t in op.outputs]


def _observed_shapes(tf: Any, tf_graph: Any, feed: Mapping[str, Any]) -> dict[str, Shape]:
    # Only what reaches no stateful op: a shape is not worth running a model's WriteFile.
    clean = side_effect_free(tf_graph)
    # Fetch only tensors the session's graph still has.  Grappler simplifies the graph before
    # running it, and a multi-output op it simplifies keeps only what is read: an inference
    # FusedBatchNorm/V2/V3 becomes an Identity with one output, yet its training-only outputs
    # 1-5 are tensors of the imported graph.  An extra output (port > 0) that nothing reads
    # feeds no segment, so its shape is not needed; port 0 is kept (a signature output is
    # often read by nothing).  Grappler stays on: it also drops the control edges that would
    # otherwise run the uninitialized variable reads fed by --extract-weights.
    consumed = {t.name for op in tf_graph.get_operations() for t in op.inputs}
    unknown = [t for op in tf_graph.get_operations()
               if op.type != "Placeholder" and op.name in clean for t in op.outputs
               if not t.shape.is_fully_defined() and t.dtype not in (tf.resource, tf.variant)
               and (t.value_index == 0 or t.name in consumed)]
    if not unknown:
        return {}
    feeds = {tf_graph.get_tensor_by_name(name): value for name, value in feed.items()}
    config = tf.compat.v1.ConfigProto(use_per_session_threads=True)
    with tf.compat.v1.Session(graph=tf_graph, config=config) as sess:
        values = sess.run(unknown, feed_dict=feeds)
    return {t.name: tuple(int(d) for d in getattr(v, "shape", ())) for t, v in zip(unknown, values)}


def _as_tuple(shape: Any) -> Shape | None:
    if shape.rank is None:
        return None
    return tuple(shape.as_list())


def import_tf() -> Any:
    from neuroncli.lazy_tf import import_tensorflow
    return import_tensorflow()
