"""The shared shape of a protobuf rewrite: read, validate, edit every meta graph, write.

Both ``tf-neuron-auto-multicore`` and ``neuron-place`` change only attributes of NeuronOp nodes.
:func:`rewrite_saved_model` does the rest once: map the SavedModel, let the edit validate each
meta graph and say which attributes to set, then write the patched bytes atomically next to a
copy of ``variables/`` and ``assets/``.  The input directory is never modified.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Callable

from neuroncli.errors import UserError, stage
from neuroncli.format.neuron_op import check_attr_sizes, from_attrs
from neuroncli.format.view import patched_chunks
from neuroncli.savedmodel import (
    atomic_output, check_output_path, copy_model_files, open_saved_model_view,
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


Edit = Callable[[Any], tuple[dict, dict]]
"""(MetaGraphView) -> (summary detail, {NeuronOp start: {attr: AttrValue}}); raises UserError."""


def require_compiled(model_dir: str, view: Any) -> None:
    """Refuse a model with no NeuronOp, and read every NeuronOp's schema once."""
    found = False
    for meta in view.meta_graphs:
        for op in meta.neuron_ops:
            found = True
            try:
                check_attr_sizes(op.node.attr)
                from_attrs(op.node.attr)
            except ValueError:  # includes UnicodeDecodeError
                raise UserError(f"{model_dir}: NeuronOp {op.node.name!r} ({op.where}) has "
                                "corrupt attributes: recompile the model") from None
    if not found:
        raise UserError(f"{model_dir}: not a compiled model (no NeuronOp): run "
                        "neuron-compile first")


def rewrite_saved_model(command: str, model_dir: str, new_model_dir: str, edit: Edit, *,
                        force: bool = False) -> RewriteReport:
    """Apply ``edit`` to every meta graph of ``model_dir`` and write ``new_model_dir``.

    Only the edited NodeDefs are re-encoded; every other byte of ``saved_model.pb`` is copied
    from a memory map of the input (:mod:`neuroncli.format.view`).
    """
    started = time.perf_counter()
    model_dir, new_model_dir = os.fspath(model_dir), os.fspath(new_model_dir)
    with stage("load"):
        view = open_saved_model_view(model_dir)
    try:
        check_output_path(new_model_dir, input_dir=model_dir, force=force)
        require_compiled(model_dir, view)
        summaries, edits = [], {}
        for meta in view.meta_graphs:
            detail, changes = edit(meta) if meta.neuron_ops else ({}, {})
            edits.update(changes)
            summaries.append(MetaGraphSummary(meta.tags, len(meta.neuron_ops), detail))
        with stage("write"), atomic_output(new_model_dir, input_dir=model_dir,
                                           force=force) as tmp:
            # variables/ can be gigabytes: copy it while the protobuf is written
            with ThreadPoolExecutor(max_workers=1) as pool:
                copying = pool.submit(copy_model_files, model_dir, tmp)
                _write_chunks(os.path.join(tmp, "saved_model.pb"),
                              patched_chunks(view, edits))
                copying.result()
    finally:
        view.close()
    return RewriteReport(command, model_dir, new_model_dir, tuple(summaries),
                         time.perf_counter() - started)


def _write_chunks(path: str, chunks: list) -> None:
    with open(path, "wb") as handle:
        handle.writelines(chunks)
