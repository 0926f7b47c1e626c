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

from neuroncli.errors import UsageError, UserError
from neuroncli.format.neuron_op import ATTR_NC_COUNT, ATTR_START_NC, int_attr
from neuroncli.rewrite.multicore import MAX_CORES, check_replicable
from neuroncli.rewrite.rewriter import RewriteReport, rewrite_saved_model

ALL_VISIBLE = 0


@dataclass(frozen=True)
class Placement:
    """Where a model goes: ``start_nc`` (-1 least used) and ``nc_count`` (-1 one, 0 all)."""

    start_nc: int = -1
    nc_count: int = -1

    def __post_init__(self) -> None:
        if not isinstance(self.start_nc, int) or self.start_nc < -1 or self.start_nc >= MAX_CORES:
            raise UserError(f"start_nc must be -1 (least-used core) or a core index from 0 to "
                            f"{MAX_CORES - 1}, got {self.start_nc!r}")
        if not isinstance(self.nc_count, int) or self.nc_count < -1 or self.nc_count > MAX_CORES:
            raise UserError(f"nc_count must be -1 (one core) or from 1 to {MAX_CORES}, got "
                            f"{self.nc_count!r}")

    @classmethod
    def from_options(cls, start_nc: int | None, nc_count: int | None,
                     multicore: bool) -> Placement:
        if multicore:
            if start_nc is not None or nc_count is not None:
                raise UsageError("--multicore places the model on every visible core: it "
                                 "cannot be combined with --start-nc or --nc-count")
            return cls(start_nc=0, nc_count=ALL_VISIBLE)
        if start_nc is None and nc_count is None:
            raise UsageError("say where to place the model: --start-nc/--nc-count or "
                             "--multicore")
        if nc_count == 0:
            raise UserError("--nc-count must be -1 (one core) or at least 1, got 0")
        return cls(start_nc=-1 if start_nc is None else start_nc,
                   nc_count=-1 if nc_count is None else nc_count)

    def describe(self) -> str:
        where = "least-used core" if self.start_nc == -1 else f"core {self.start_nc}"
        if self.nc_count == ALL_VISIBLE:
            return "every visible core"
        if self.nc_count in (-1, 1):
            return f"one core ({where})"
        return f"{self.nc_count} cores from {where}"


def tag_placement(meta: Any, placement: Placement) -> tuple[dict, dict]:
    """The placement edit of every NeuronOp of a meta graph view."""
    if placement.nc_count not in (-1, 1):
        check_replicable(meta)
    attrs = {ATTR_START_NC: int_attr(placement.start_nc),
             ATTR_NC_COUNT: int_attr(placement.nc_count)}
    edits = {op.start: attrs for op in meta.neuron_ops}
    return {"tagged": len(edits), "start_nc": placement.start_nc,
            "nc_count": placement.nc_count, "placement": placement.describe()}, edits


def place_saved_model(model_dir: str, new_model_dir: str, placement: Placement, *,
                      force: bool = False) -> RewriteReport:
    """``neuron-place MODEL_DIR --new_model_dir NEW ...``."""
    return rewrite_saved_model("neuron-place", model_dir, new_model_dir,
                               lambda mg: tag_placement(mg, placement), force=force)
