"""Automatic dynamic batch: which NeuronOps may run any batch as shards of the compiled one.

AWS's compiler switches dynamic batch on by itself when every NeuronOp carries the batch
through ops that treat rows independently.  This package proves it per NeuronOp, on the
compiled (static-shape) graph, with a conservative whitelist (:mod:`.rules`,
:mod:`.reshaping`) propagated by :mod:`.analysis`; a program it cannot prove stays at its
compiled batch, and the verdict names the first op that mixed rows.  Protobuf only.
"""

from neuroncli.dynbatch.analysis import (
    RULES, BatchVerdict, RowStates, analyze_rows, segment_verdict,
)

__all__ = ["RULES", "BatchVerdict", "RowStates", "analyze_rows", "segment_verdict"]
