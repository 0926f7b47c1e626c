"""Core placement: pin a compiled model's NeuronOps to NeuronCores (this project's attributes).

Written into every NeuronOp, read by the runtime at load (``neuroncli.runtime``):

``_neuroncli_start_nc`` (int)
    first core, relative to the visible cores; ``-1`` = the least-used visible core at load.
``_neuroncli_nc_count`` (int)
    ``-1`` = exactly one core; ``N >= 1`` = replicate over N consecutive cores;
    ``0`` = every visible core (``--multicore``).

Same semantics as AWS's placement calls (``set_neuron_cores(model, start_nc, nc_count)``,
``set_multicore(model)``).  Whether a range fits the visible cores is only known at load, where
the runtime checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuroncli.errors import UsageError
from neuroncli.format.neuron_op import ATTR_NC_COUNT, ATTR_START_NC, int_attr
from neuroncli.format.placement import (
    ALL_VISIBLE, LEAST_USED, ONE_CORE, check_nc_count, check_start_nc,
)
from neuroncli.rewrite.multicore import check_replicable
from neuroncli.rewrite.rewriter import RewriteReport, rewrite_saved_model


@dataclass(frozen=True)
class PlacementRequest:
    """Where a model is asked to go, as ``neuron-place`` writes it into its NeuronOps:
    ``start_nc`` (-1 least used) and ``nc_count`` (-1 one, 0 every visible core).  The cores
    it lands on are chosen at load (``neuroncli.runtime.placement.ReplicaLayout``)."""

    start_nc: int = LEAST_USED
    nc_count: int = ONE_CORE

    def __post_init__(self) -> None:
        check_start_nc(self.start_nc)
        check_nc_count(self.nc_count, all_visible=True)

    @classmethod
    def from_options(cls, start_nc: int | None, nc_count: int | None,
                     multicore: bool) -> PlacementRequest:
        if multicore:
            if start_nc is not None or nc_count is not None:
                raise UsageError("--multicore places the model on every visible core: it "
                                 "cannot be combined with --start-nc or --nc-count")
            return cls(start_nc=0, nc_count=ALL_VISIBLE)
        if start_nc is None and nc_count is None:
            raise UsageError("say where to place the model: --start-nc/--nc-count or "
                             "--multicore")
        if nc_count is not None:
            check_nc_count(nc_count)  # 0 is --multicore's to write
        return cls(start_nc=LEAST_USED if start_nc is None else start_nc,
                   nc_count=ONE_CORE if nc_count is None else nc_count)

    def describe(self) -> str:
        where = "least-used core" if self.start_nc == -1 else f"core {self.start_nc}"
        if self.nc_count == ALL_VISIBLE:
            return "every visible core"
        if self.nc_count in (-1, 1):
            return f"one core ({where})"
        return f"{self.nc_count} cores from {where}"


def tag_placement(meta: Any, placement: PlacementRequest) -> tuple[dict, dict]:
    """The placement edit of every NeuronOp of a meta graph view."""
    if placement.nc_count not in (-1, 1):
        check_replicable(meta)
    attrs = {ATTR_START_NC: int_attr(placement.start_nc),
             ATTR_NC_COUNT: int_attr(placement.nc_count)}
    edits = {op.start: attrs for op in meta.neuron_ops}
    return {"tagged": len(edits), "start_nc": placement.start_nc,
            "nc_count": placement.nc_count, "placement": placement.describe()}, edits


def place_saved_model(model_dir: str, new_model_dir: str, placement: PlacementRequest, *,
                      force: bool = False) -> RewriteReport:
    """``neuron-place MODEL_DIR --new_model_dir NEW ...``."""
    return rewrite_saved_model("neuron-place", model_dir, new_model_dir,
                               lambda mg: tag_placement(mg, placement), force=force)
