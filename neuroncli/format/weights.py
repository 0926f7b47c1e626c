"""Where a compiled model keeps weights extracted from its graph (``--extract-weights``).

Such a model has one ``VarHandleOp`` per weight in its graph (``shared_name`` = node name),
read by ``ReadVariableOp`` nodes whose outputs feed the NeuronOps, and a TensorFlow
checkpoint ``variables/variables`` holding one tensor per handle, keyed by the node name.
The compiler writes this layout, with a ``saver_def`` and its restore ops (:func:`add_saver`)
so that TensorFlow's own loaders restore the checkpoint too; the runtime restores it at load
its own way; the rewrites copy ``variables/`` along.  Protobuf only.
"""

from __future__ import annotations

import os
from typing import Any

VARIABLES_PREFIX = os.path.join("variables", "variables")
#: The op of a resource variable's handle, and the op that reads its value.
HANDLE_OP = "VarHandleOp"
READ_OP = "ReadVariableOp"
#: Ops that hold a variable: TF2 resource handles and TF1 reference variables.
VARIABLE_OPS = frozenset({HANDLE_OP, "VariableV2", "Variable"})
#: Ops that change a variable: a model that has any cannot treat its reads as constants.
WRITER_OPS = frozenset({"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
                        "ResourceScatterUpdate", "ResourceScatterAdd", "ResourceScatterSub",
                        "ResourceScatterMul", "ResourceScatterDiv", "ResourceScatterMin",
                        "ResourceScatterMax", "ResourceScatterNdUpdate",
                        "ResourceScatterNdAdd", "ResourceScatterNdSub"})


def variable_handles(graph_def: Any) -> list[Any]:
    """The ``VarHandleOp`` nodes of a compiled graph, sorted by name."""
    return sorted((n for n in graph_def.node if n.op == HANDLE_OP), key=lambda n: n.name)



#: Name scope of the restore ops a compiled model with extracted weights carries, so that
#: TensorFlow's own loaders (``tf.saved_model.load``, ``tf.compat.v1.saved_model.load``)
#: restore ``variables/`` as for any SavedModel (its ``saver_def`` names them).  neuroncli's
#: runtime restores the weights its own way and ignores these nodes, and so do the counts.
SAVER_SCOPE = "neuroncli_saver"


#: Nodes of the saver besides one AssignVariableOp per handle: filename, tensor_names,
#: shape_and_slices, RestoreV2, restore_all.
SAVER_FIXED_NODES = 5


def is_saver_node(name: str) -> bool:
    return name.startswith(SAVER_SCOPE + "/")


def saver_node_count(meta_graph: Any, handles: int) -> int:
    """Nodes :func:`add_saver` added to a meta graph with ``handles`` variable handles (0 when
    it has no neuroncli saver): lets a count that cannot see node names leave them out."""
    if not is_saver_node(meta_graph.saver_def.restore_op_name):
        return 0
    return SAVER_FIXED_NODES + handles


def add_saver(meta_graph: Any) -> None:
    """Give a compiled meta graph with variable handles the restore ops and ``saver_def`` a
    TF1 ``Saver`` would write: RestoreV2 of every handle's tensor (keyed by the handle's node
    name), one AssignVariableOp each, and a NoOp grouping them.  No handles: no change."""
    from neuroncli.proto.dtypes import DT_STRING
    handles = variable_handles(meta_graph.graph_def)
    if not handles:
        return
    nodes = meta_graph.graph_def.node
    prefix = nodes.add(name=f"{SAVER_SCOPE}/filename", op="Placeholder")
    prefix.attr["dtype"].type = DT_STRING
    prefix.attr["shape"].shape.SetInParent()  # a scalar
    for suffix, values in (("tensor_names", [h.name.encode() for h in handles]),
                           ("shape_and_slices", [b""] * len(handles))):
        const = nodes.add(name=f"{SAVER_SCOPE}/{suffix}", op="Const")
        const.attr["dtype"].type = DT_STRING
        tensor = const.attr["value"].tensor
        tensor.dtype = DT_STRING
        tensor.tensor_shape.dim.add(size=len(values))
        tensor.string_val.extend(values)
    restore = nodes.add(name=f"{SAVER_SCOPE}/RestoreV2", op="RestoreV2",
                        input=[f"{SAVER_SCOPE}/filename", f"{SAVER_SCOPE}/tensor_names",
                               f"{SAVER_SCOPE}/shape_and_slices"])
    restore.attr["dtypes"].list.type.extend(h.attr["dtype"].type for h in handles)
    for index, handle in enumerate(handles):
        assign = nodes.add(name=f"{SAVER_SCOPE}/Assign_{index}", op="AssignVariableOp",
                           input=[handle.name, f"{SAVER_SCOPE}/RestoreV2:{index}"])
        assign.attr["dtype"].type = handle.attr["dtype"].type
    nodes.add(name=f"{SAVER_SCOPE}/restore_all", op="NoOp",
              input=[f"^{SAVER_SCOPE}/Assign_{i}" for i in range(len(handles))])
    saver = meta_graph.saver_def
    saver.filename_tensor_name = f"{SAVER_SCOPE}/filename:0"
    saver.save_tensor_name = f"{SAVER_SCOPE}/filename:0"  # restore-only: nothing saves here
    saver.restore_op_name = f"{SAVER_SCOPE}/restore_all"
    saver.version = saver.V2
