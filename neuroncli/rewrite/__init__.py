"""Protobuf-only rewrites of compiled SavedModels: replica tagging (auto-multicore) and core
placement.  Never imports TensorFlow: these commands run in CI steps and must be instant."""

from neuroncli.rewrite.multicore import auto_multicore_saved_model, tag_replicas
from neuroncli.rewrite.placement import PlacementRequest, place_saved_model, tag_placement
from neuroncli.rewrite.rewriter import MetaGraphSummary, RewriteReport

__all__ = ["auto_multicore_saved_model", "tag_replicas", "PlacementRequest",
           "place_saved_model", "tag_placement", "MetaGraphSummary", "RewriteReport"]
