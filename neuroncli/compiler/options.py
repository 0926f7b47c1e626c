"""The one record of compile parameters, validated before any work starts (no TensorFlow)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from neuroncli.compiler.flags import CompilerFlags
from neuroncli.errors import UserError
from neuroncli.partition.support import OpSet

# AWS's TF1 default is min(2, max(1, #non-Placeholder ops)): 2 unless the graph has one op.
DEFAULT_MINIMUM_SEGMENT_SIZE = 2
# AWS's trace: a segment of one op compiles, and a dominant segment is kept alone.
TRACE_MINIMUM_SEGMENT_SIZE = 1
TRACE_PRUNE_SMALL_SUBGRAPHS_RATIO = 0.8


def default_minimum_segment_size(graph_def: Any) -> int:
    """AWS's TF1 ``saved_model.compile`` default, from the frozen graph's node count."""
    ops = sum(1 for node in graph_def.node if node.op != "Placeholder")
    return min(DEFAULT_MINIMUM_SEGMENT_SIZE, max(1, ops))


@dataclass(frozen=True)
class CompileOptions:
    """Everything ``neuron-compile`` and ``saved_model.compile`` take.

    batch_size: compiled size of an unknown leading input dimension (>= 1).
    input_shapes: signature input key (or tensor name) -> full shape to compile for.
    feed: signature input key -> example array; its shapes are used.
    tags: tag set of the meta graph (None: ``{serve}``, else the first).
    signature_def_key: signature to compile (None: ``serving_default``, else the first).
    minimum_segment_size: segments with fewer ops (Identity not counted) stay on CPU;
        None: AWS's TF1 default (:func:`default_minimum_segment_size`).
    op_set: operator types offered to the device (default AWS's list; ``supported_op_types``).
    fuse_foldable_nodes: constant-foldable nodes join segments whatever their type.
    prune_small_subgraphs_ratio: when > 0 and the largest of several segments holds more
        than this share of the segmented nodes, only it is compiled (``trace``: 0.8).
    drop_cheap_segments: when several segments remain and some hold a MatMul/Conv-like op,
        the others stay on CPU (``trace``'s automatic mode).
    builder: ``trace``'s ``subgraph_builder_function``: the nodes it accepts are forced into
        segments and no other node is (AWS's manual partitioning).
    no_fuse_ops / force_fuse_ops: node names forced onto CPU / into segments.
    flags: parsed ``NEURON_CC_FLAGS`` + ``compiler_args``.
    compiler_workdir: directory for compile artifacts (like ``--workdir``).
    force: replace an existing output directory.
    jobs: segments compiled in parallel (threads).
    """

    batch_size: int = 1
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    feed: Mapping[str, Any] | None = None
    tags: tuple[str, ...] | None = None
    signature_def_key: str | None = None
    minimum_segment_size: int | None = None
    op_set: OpSet = field(default_factory=OpSet)
    fuse_foldable_nodes: bool = True
    prune_small_subgraphs_ratio: float = 0.0
    drop_cheap_segments: bool = False
    builder: Callable[[Any], bool] | None = None
    no_fuse_ops: tuple[str, ...] = ()
    force_fuse_ops: tuple[str, ...] = ()
    flags: CompilerFlags = field(default_factory=CompilerFlags)
    compiler_workdir: str | None = None
    force: bool = False
    jobs: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UserError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if self.minimum_segment_size is not None and (
                not isinstance(self.minimum_segment_size, int) or self.minimum_segment_size < 1):
            raise UserError("minimum segment size must be a positive integer, got "
                            f"{self.minimum_segment_size!r}")
        if self.jobs < 1:
            raise UserError(f"jobs must be at least 1, got {self.jobs}")
        overlap = sorted(set(self.no_fuse_ops) & set(self.force_fuse_ops))
        if overlap:
            raise UserError(f"node {overlap[0]!r} is in both no_fuse_ops and force_fuse_ops: "
                            "list it in one of them")

    @property
    def workdir(self) -> str | None:
        return self.flags.workdir or self.compiler_workdir

    def check_workdir(self, input_dir: str | None) -> None:
        """Refuse a work directory that is a file or lies inside ``input_dir`` (the model
        being compiled), before any work: it is written after the whole compile, and inputs
        are never modified.  Every entry point calls this, whichever way the directory came
        (``compiler_workdir``, ``--compiler_workdir``, ``NEURON_CC_FLAGS='--workdir DIR'``)."""
        workdir = self.workdir
        if not workdir:
            return
        if os.path.lexists(workdir) and not os.path.isdir(workdir):
            raise UserError(f"compiler work directory {workdir}: exists and is not a "
                            "directory: pass a directory (it is created if missing)")
        if input_dir is None:
            return
        real, src = os.path.realpath(workdir), os.path.realpath(input_dir)
        if real == src or real.startswith(src + os.sep):
            raise UserError(f"compiler work directory {workdir}: is inside the input "
                            f"directory {input_dir}: choose a path outside it (inputs are "
                            "never modified)")
