"""Auto-multicore: tag every NeuronOp for data-parallel replication over N NeuronCores.

Sets the int attribute ``_automatic_multicore = N`` on every NeuronOp, at top level and inside
library functions (AWS's TF2 models keep NeuronOps there), in every meta graph.  That attribute
is the only thing AWS's tool changes.  Unlike AWS's tool, we validate up front: N in 1..64, a
compiled model, and no program compiled for several pipeline cores (those cannot be
replicated; the real runtime silently ignores the tag).
"""

from __future__ import annotations

from typing import Any

from neuroncli import proto
from neuroncli.errors import UserError
from neuroncli.format.neuron_op import ATTR_AUTO_MULTICORE, int_attr, iter_neuron_op_nodes
from neuroncli.format.placement import check_num_cores
from neuroncli.rewrite.rewriter import RewriteReport, rewrite_saved_model


def check_replicable(meta: Any) -> None:
    """Refuse programs spanning several pipeline cores: they cannot be replicated."""
    for op in meta.neuron_ops:
        attrs = op.node.attr  # model_config alone: the lists were read by require_compiled
        config = attrs["model_config"].list.i if "model_config" in attrs else ()
        if len(config) > 1 and config[1] > 1:
            raise UserError(f"NeuronOp {op.node.name!r} ({op.where}) was compiled for "
                            f"{config[1]} pipeline cores (--neuroncore-pipeline-cores) and "
                            "cannot be replicated: recompile without pipeline cores to use "
                            "auto-multicore")


def tag_replicas(meta: Any, num_cores: int) -> tuple[dict, dict]:
    """The ``_automatic_multicore`` edit of every NeuronOp of a meta graph view."""
    check_num_cores(num_cores)
    check_replicable(meta)
    edits = {op.start: {ATTR_AUTO_MULTICORE: int_attr(num_cores)} for op in meta.neuron_ops}
    return {"tagged": len(edits), "replicas": num_cores}, edits


def tag_saved_model(saved_model: Any, num_cores: int) -> Any:
    """A copy of a ``SavedModel`` message with ``_automatic_multicore = num_cores`` on every
    NeuronOp: what ``neuroncli.auto_multicore`` loads, so that ``.save()`` writes the count
    and a reload keeps the replicas (the message in memory, for models never written)."""
    check_num_cores(num_cores)
    tagged = proto.SavedModel()
    tagged.CopyFrom(saved_model)
    nodes = [node for meta in tagged.meta_graphs for _, node in iter_neuron_op_nodes(meta)]
    if not nodes:
        raise UserError("not a compiled model (no NeuronOp): compile it first")
    for node in nodes:
        node.attr[ATTR_AUTO_MULTICORE].CopyFrom(int_attr(num_cores))
    return tagged


def auto_multicore_saved_model(model_dir: str, new_model_dir: str, num_cores: int, *,
                               force: bool = False) -> RewriteReport:
    """``tf-neuron-auto-multicore MODEL_DIR --num_cores N --new_model_dir NEW``."""
    check_num_cores(num_cores, "--num_cores")
    return rewrite_saved_model("tf-neuron-auto-multicore", model_dir, new_model_dir,
                               lambda mg: tag_replicas(mg, num_cores), force=force)
