"""Where a compiled model keeps weights extracted from its graph (``--extract-weights``).

Such a model has one ``VarHandleOp`` per weight in its graph (``shared_name`` = node name),
read by ``ReadVariableOp`` nodes whose outputs feed the NeuronOps, and a TensorFlow
checkpoint ``variables/variables`` holding one tensor per handle, keyed by the node name.
The compiler writes this layout; the runtime restores it at load; the rewrites copy
``variables/`` along.  Protobuf only.
"""

from __future__ import annotations

import os
from typing import Any

VARIABLES_PREFIX = os.path.join("variables", "variables")
#: Ops that change a variable: a model that has any cannot treat its reads as constants.
WRITER_OPS = frozenset({"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
                        "ResourceScatterUpdate", "ResourceScatterAdd", "ResourceScatterSub",
                        "ResourceScatterMul", "ResourceScatterDiv", "ResourceScatterMin",
                        "ResourceScatterMax", "ResourceScatterNdUpdate",
                        "ResourceScatterNdAdd", "ResourceScatterNdSub"})


def variable_handles(graph_def: Any) -> list[Any]:
    """The ``VarHandleOp`` nodes of a compiled graph, sorted by name."""
    return sorted((n for n in graph_def.node if n.op == "VarHandleOp"), key=lambda n: n.name)


def extracted_weight_bytes(graph_def: Any) -> int:
    """Bytes of the weights a compiled graph keeps in ``variables/`` (0 when none)."""
    from neuroncli.proto import dtype_size
    total = 0
    for node in variable_handles(graph_def):
        count = 1
        for dim in node.attr["shape"].shape.dim:
            count *= max(0, dim.size)
        total += count * dtype_size(node.attr["dtype"].type)
    return total
