"""Protobuf-only rewrites of compiled SavedModels: replica tagging (auto-multicore) and core
placement.  Never imports TensorFlow: these commands run in CI steps and must be instant."""

from neuroncli.rewrite.multicore import MAX_CORES, auto_multicore_saved_model, tag_replicas
from neuroncli.rewrite.placement import Placement, place_saved_model, tag_placement
from neuroncli.rewrite.rewriter import MetaGraphSummary, RewriteReport

__all__ = ["MAX_CORES", "auto_multicore_saved_model", "tag_replicas", "Placement",
           "place_saved_model", "tag_placement", "MetaGraphSummary", "RewriteReport"]
