"""``--extract-weights`` and protobuf's 2 GB wall.

A frozen graph carries every weight as a ``Const``; a compiled model carries it once, in the
NeuronOps' programs (their ``graph_def`` keeps only the shapes of large constants, see
:mod:`neuroncli.format.subgraph`), so ``saved_model.pb`` hits protobuf's 2 GB limit at about
2 GB of weights.  :func:`check_protobuf_limit` estimates that size from the variables the
signature reads (:func:`read_weight_bytes`: protobuf only, before TensorFlow is imported) and
stops with a message naming ``--extract-weights``, instead of a protobuf exception minutes
later.

With ``--extract-weights INSTANCE`` the freezer keeps each variable as a ``VarHandleOp``
(read by the model's own ``ReadVariableOp``); the NeuronOps take the values as inputs, and the
compiled model stores them in ``variables/`` as a TensorFlow checkpoint keyed by the handle's
node name.  The runtime restores them once at load and binds them into the programs like any
other constant.  ``max_num_duplicates`` then follows the instance's memory: the copies of the
weights that fit in one core's memory, times its cores (at most 64, AWS's cap).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from neuroncli.errors import UserError
from neuroncli.format.instances import GIB, INSTANCE_TYPES
from neuroncli.format.placement import MAX_CORES
from neuroncli.format.weights import VARIABLES_PREFIX
from neuroncli.graph import split_tensor
from neuroncli.proto.dtypes import dtype_size
from neuroncli.savedmodel.reachable import read_variables

PROTOBUF_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class ExtractedWeights:
    """Weights kept out of the graph: ``VarHandleOp`` node name -> value (numpy array)."""

    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(int(v.nbytes) for v in self.values.values())

    def __bool__(self) -> bool:
        return bool(self.values)


def _shape_bytes(dtype: int, shape: Any) -> int:
    if shape.unknown_rank or any(d.size < 0 for d in shape.dim):
        return 0
    count = 1
    for dim in shape.dim:
        count *= dim.size
    return count * dtype_size(dtype)


def read_weight_bytes(meta_graph: Any, signature: Any) -> int:
    """Bytes of the variables ``signature`` reads (what freezing will make constants of).
    Unknown shapes count as nothing: this is an estimate, not a promise."""
    return sum(_shape_bytes(v.dtype, v.shape) for v in read_variables(meta_graph, signature))


def _gb(count: int) -> str:
    return f"{count / 1e9:.2f} GB"


def check_protobuf_limit(source: str, weight_bytes: int, graph_bytes: int,
                         extract_weights: str | None) -> None:
    """Refuse, before any work, a compile whose ``saved_model.pb`` would pass 2 GB."""
    if extract_weights is not None:
        return
    estimate = weight_bytes + graph_bytes  # one copy of each weight, in the programs
    if estimate > PROTOBUF_LIMIT:
        raise UserError(
            f"{source}: {_gb(weight_bytes)} of weights would make the compiled "
            f"saved_model.pb about {_gb(estimate)}, past protobuf's 2 GB limit: compile with "
            "NEURON_CC_FLAGS='--extract-weights inf2.xlarge' to keep the weights in "
            "variables/ instead")


def max_num_duplicates(weight_bytes: int, instance: str) -> int:
    """Copies of the weights that fit in one core's memory, times the instance's cores."""
    spec = INSTANCE_TYPES[instance]
    per_core = spec.core_memory_bytes // max(1, weight_bytes)
    if per_core < 1:
        raise UserError(
            f"--extract-weights {instance}: the weights ({weight_bytes / GIB:.2f} GiB) do not "
            f"fit in one NeuronCore of {instance} ({spec.core_memory_bytes / GIB:.0f} GiB): "
            "name an instance with more memory per core, e.g. --extract-weights inf2.xlarge")
    return min(MAX_CORES, per_core * spec.cores)


def handles_for_placeholders(graph_def: Any, values: Mapping[str, Any]) -> None:
    """Turn the resource ``Placeholder`` of each captured variable into a ``VarHandleOp``
    (in place); ``values`` maps those node names to the variables' values.  Consumers that
    reached a handle through ``Identity`` nodes (inlined function boundaries) read it
    directly, leaving those identities dead for the pruner."""
    for node in graph_def.node:
        if node.name in values and node.op == "Placeholder":
            _make_handle(node, values[node.name])
    by_name = {node.name: node for node in graph_def.node}
    for node in graph_def.node:
        for i, ref in enumerate(node.input):
            source = _handle_behind(ref, by_name, values)
            if source is not None and source != split_tensor(ref)[0]:
                node.input[i] = source


def _handle_behind(ref: str, by_name: Mapping[str, Any], values: Mapping[str, Any]) -> str | None:
    """The handle a data input ``ref`` reads through ``Identity`` nodes, if any."""
    if ref.startswith("^"):
        return None
    node = by_name.get(split_tensor(ref)[0])
    while node is not None and node.op == "Identity" and node.input:
        node = by_name.get(split_tensor(node.input[0])[0])
    return node.name if node is not None and node.name in values else None


def _make_handle(node: Any, value: Any) -> None:
    from neuroncli.lazy_tf import import_tensorflow
    dtype = import_tensorflow().dtypes.as_dtype(value.dtype).as_datatype_enum
    name, device = node.name, node.device
    node.Clear()
    node.name, node.op, node.device = name, "VarHandleOp", device
    node.attr["dtype"].type = dtype
    for dim in value.shape:
        node.attr["shape"].shape.dim.add(size=int(dim))
    node.attr["shared_name"].s = node.name.encode()
    node.attr["container"].s = b""


def write_variables(directory: str, weights: ExtractedWeights) -> None:
    """Write ``directory/variables/variables.{index,data-*}``: one checkpoint tensor per
    handle, keyed by its node name, in sorted order (the same weights give the same bytes)."""
    from neuroncli.lazy_tf import import_tensorflow
    tf = import_tensorflow()
    os.makedirs(os.path.join(directory, "variables"), exist_ok=True)
    names = sorted(weights.values)
    with tf.device("/CPU:0"):
        tf.raw_ops.SaveV2(prefix=os.path.join(directory, VARIABLES_PREFIX),
                          tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[weights.values[n] for n in names])


def read_feeds(graph_def: Any, weights: ExtractedWeights) -> dict[str, Any]:
    """``ReadVariableOp`` output tensor -> its weight's value, so a graph whose variables are
    not initialized can still be run (the shape pass on real inputs feeds these)."""
    if not weights:
        return {}
    by_name = {node.name: node for node in graph_def.node}
    feeds: dict[str, Any] = {}
    for node in graph_def.node:
        if node.op != "ReadVariableOp" or not node.input:
            continue
        source = _handle_behind(node.input[0], by_name, weights.values)
        if source is not None:
            feeds[f"{node.name}:0"] = weights.values[source]
    return feeds
