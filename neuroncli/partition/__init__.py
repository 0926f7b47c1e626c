"""Partitioning: choose the segments that become ``NeuronOp`` nodes, and (un)fuse them.

Two visible stages, as in torch.fx: :func:`propose_segments` / :func:`partition` return a
plain :class:`Plan` (print it, dump it, test it); :func:`extract_segment` and
:func:`fuse_segment` then rewrite the graph one segment at a time, and
:func:`expand_neuron_ops` undoes that.  Pure Python and protobuf: never imports TensorFlow.
"""

from neuroncli.partition.expand import expand_neuron_ops, expansion_map
from neuroncli.partition.fuse import (
    SegmentGraph, extract_segment, fuse_segment, segment_digest_name,
)
from neuroncli.partition.plan import (
    NOTHING_TO_COMPUTE_REASON, UNCOUNTED_OPS, Plan, Segment, filter_segments,
)
from neuroncli.partition.propose import (
    BOUNDARY_DTYPES, PROTECTED, SIGNATURE_INPUT, partition, propose_segments,
)
from neuroncli.partition.support import (
    AWS_DEFAULT_OPS, DEFAULT_OP_SET, SIMULATOR_EXTRA_OPS, AllowNames, CallableRule, Decision,
    DenyNames, OpTypeRule, Rule, SupportPolicy, any_chain, chain, default_policy,
)

__all__ = [
    "AWS_DEFAULT_OPS", "DEFAULT_OP_SET", "SIMULATOR_EXTRA_OPS", "BOUNDARY_DTYPES",
    "UNCOUNTED_OPS", "NOTHING_TO_COMPUTE_REASON", "PROTECTED", "SIGNATURE_INPUT",
    "Decision", "Rule", "OpTypeRule", "DenyNames", "AllowNames", "CallableRule", "chain",
    "any_chain", "SupportPolicy", "default_policy",
    "Segment", "Plan", "propose_segments", "filter_segments", "partition",
    "SegmentGraph", "extract_segment", "fuse_segment", "segment_digest_name",
    "expand_neuron_ops", "expansion_map",
]
