"""Partitioning: choose the segments that become ``NeuronOp`` nodes, and (un)fuse them.

Two visible stages, as in torch.fx: :func:`propose_segments` / :func:`partition` return a
plain :class:`SegmentPlan` (print it, dump it, test it); :func:`extract_segment` and
:func:`fuse_segment` then rewrite the graph one segment at a time, and
:func:`expand_neuron_ops` undoes that.  Pure Python and protobuf: never imports TensorFlow.
"""

from neuroncli.partition.expand import expand_neuron_ops, expansion_map
from neuroncli.partition.fuse import (
    SegmentGraph, extract_segment, fuse_segment, segment_digest_name,
)
from neuroncli.partition.foldable import SHAPE_QUERY_OPS, constant_foldable
from neuroncli.partition.plan import (
    NOTHING_TO_COMPUTE_REASON, UNCOUNTED_OPS, SegmentPlan, Segment, drop_cheap_segments,
    filter_segments, keep_dominant_segment,
)
from neuroncli.partition.propose import (
    BOUNDARY_DTYPES, PROTECTED, SIGNATURE_INPUT, partition, propose_segments,
)
from neuroncli.partition.support import (
    AWS_DEFAULT_OPS, AWS_LIST_NAME, DEFAULT_OP_SET, EXPENSIVE_OP_TYPES, NAMED_OP_SETS,
    SIMULATOR_EXTRA_OPS,
    AllowNames, CallableRule, Decision, DenyNames, OpSet, OpTypeRule, RefuseAll, Rule,
    SupportPolicy, any_chain, builder_policy, chain, cpu_only_reason, default_policy,
    outside_op_set, resolve_op_set,
)

__all__ = [
    "AWS_DEFAULT_OPS", "AWS_LIST_NAME", "DEFAULT_OP_SET", "NAMED_OP_SETS", "SIMULATOR_EXTRA_OPS",
    "BOUNDARY_DTYPES", "UNCOUNTED_OPS", "NOTHING_TO_COMPUTE_REASON", "PROTECTED",
    "SIGNATURE_INPUT", "SHAPE_QUERY_OPS",
    "Decision", "Rule", "OpTypeRule", "DenyNames", "AllowNames", "CallableRule", "RefuseAll",
    "chain", "any_chain", "SupportPolicy", "default_policy", "builder_policy", "OpSet",
    "resolve_op_set", "cpu_only_reason", "outside_op_set", "constant_foldable",
    "EXPENSIVE_OP_TYPES", "drop_cheap_segments",
    "Segment", "SegmentPlan", "propose_segments", "filter_segments", "keep_dominant_segment",
    "partition",
    "SegmentGraph", "extract_segment", "fuse_segment", "segment_digest_name",
    "expand_neuron_ops", "expansion_map",
]
