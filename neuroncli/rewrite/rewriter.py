"""The shared shape of a protobuf rewrite: read, validate, edit every meta graph, write.

Both ``tf-neuron-auto-multicore`` and ``neuron-place`` change only attributes of NeuronOp nodes.
:func:`rewrite_saved_model` does the rest once: read the SavedModel (protobuf only), let the
edit validate and change each meta graph, then write the result atomically next to a copy of
``variables/`` and ``assets/``.  The input directory is never modified.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from neuroncli.errors import UserError
from neuroncli.format.neuron_op import iter_neuron_op_nodes, from_attrs
from neuroncli.savedmodel import (
    atomic_output, check_output_path, copy_model_files, read_saved_model, write_saved_model,
)


@dataclass(frozen=True)
class MetaGraphSummary:
    """What a rewrite did to one meta graph."""

    tags: tuple[str, ...]
    neuron_ops: int
    detail: dict


@dataclass(frozen=True)
class RewriteReport:
    """What a rewrite did: per meta graph, and where the result went."""

    command: str
    model_dir: str
    new_model_dir: str
    meta_graphs: tuple[MetaGraphSummary, ...]
    seconds: float

    def to_json(self) -> str:
        doc = asdict(self)
        doc["seconds"] = round(self.seconds, 4)
        return json.dumps(doc, indent=2, sort_keys=True)


Edit = Callable[[Any], dict]  # (meta graph) -> detail for the summary; raises UserError


def require_compiled(model_dir: str, saved_model: Any) -> None:
    """Refuse a model with no NeuronOp, and read every NeuronOp's schema once."""
    found = False
    for meta_graph in saved_model.meta_graphs:
        for where, node in iter_neuron_op_nodes(meta_graph):
            found = True
            try:
                from_attrs(node.attr)
            except (ValueError, UnicodeDecodeError):
                raise UserError(f"{model_dir}: NeuronOp {node.name!r} ({where}) has corrupt "
                                "attributes: recompile the model") from None
    if not found:
        raise UserError(f"{model_dir}: not a compiled model (no NeuronOp): run "
                        "neuron-compile first")


def rewrite_saved_model(command: str, model_dir: str, new_model_dir: str, edit: Edit, *,
                        force: bool = False) -> RewriteReport:
    """Apply ``edit`` to every meta graph of ``model_dir`` and write ``new_model_dir``."""
    started = time.perf_counter()
    model_dir, new_model_dir = os.fspath(model_dir), os.fspath(new_model_dir)
    loaded = read_saved_model(model_dir)
    check_output_path(new_model_dir, input_dir=model_dir, force=force)
    saved_model = loaded.saved_model
    require_compiled(model_dir, saved_model)
    summaries = []
    for meta_graph in saved_model.meta_graphs:
        count = sum(1 for _ in iter_neuron_op_nodes(meta_graph))
        detail = edit(meta_graph) if count else {}
        summaries.append(MetaGraphSummary(tuple(meta_graph.meta_info_def.tags), count, detail))
    with atomic_output(new_model_dir, input_dir=model_dir, force=force) as tmp:
        write_saved_model(tmp, saved_model)
        copy_model_files(model_dir, tmp)
    return RewriteReport(command, model_dir, new_model_dir, tuple(summaries),
                         time.perf_counter() - started)
