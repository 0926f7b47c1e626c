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

