"""``compile_saved_model``: SavedModel in, Neuron SavedModel out, with a report.

Data flows one way: protos in -> frozen GraphDef -> IR (annotated with shapes) -> plan ->
compiled segments -> fused IR -> protos out.  Every check that needs no TensorFlow runs first,
so bad flags and bad paths fail in milliseconds and nothing is written; the output appears
only when the whole compile succeeded (:func:`neuroncli.savedmodel.atomic_output`).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from neuroncli import proto
from neuroncli.compiler import backend, batchaxes, output, sandbox, shapes, weights
from neuroncli.compiler.freeze import FrozenGraph, freeze
from neuroncli.compiler.options import CompileOptions, default_minimum_segment_size
from neuroncli.compiler.report import CompileReport, build_report
from neuroncli.errors import UserError, stage
from neuroncli.format import neuron_op
from neuroncli.format.subgraph import erase_large_constants
from neuroncli.graph import Graph, graph_from_graphdef, graph_to_graphdef, split_tensor
from neuroncli.partition import (
    EXPENSIVE_OP_TYPES, CallableRule, SegmentPlan, SupportPolicy, builder_policy, constant_foldable,
    default_policy,
    extract_segment, fuse_segment, partition, segment_digest_name,
)
from neuroncli.partition.names import restore_output_names
from neuroncli.savedmodel import (
    atomic_output, check_output_path, is_tf2, read_saved_model, select_meta_graph,
    select_signature,
)
from neuroncli.savedmodel.writer import check_model_files

log = logging.getLogger("neuroncli")
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class _Prepared:
    model_dir: str
    meta_graph: Any
    signature_key: str
    signature: Any
    input_shapes: dict[str, tuple | None]


@dataclass(frozen=True)
class CompiledGraph:
    """A frozen graph after partitioning, compiling and fusing (no files written yet).

    frozen: the input; shaped: its GraphDef with the compile-time input shapes.
    plan / results: the partition and, per segment, ``(segment, CompiledSegment, extracted)``.
    names: segment index -> NeuronOp name; mapping: old tensor -> the tensor now holding it
    (a NeuronOp output, or the same name when an IdentityN restored it: partition.names).
    supported_op_types: what was offered to the device, as the report says it.
    fused: the compiled GraphDef; graph: its IR (with dtypes and shapes).
    """

    frozen: FrozenGraph
    shaped: Any
    plan: SegmentPlan
    results: list
    names: dict[int, str]
    mapping: dict[str, str]
    fused: Any
    graph: Graph
    supported_op_types: str = ""


def compile_frozen(frozen: FrozenGraph, input_shapes: dict[str, tuple | None],
                   options: CompileOptions, progress: Progress | None = None,
                   batch_inputs: Iterable[str] | None = None) -> CompiledGraph:
    """Partition, compile and fuse a frozen graph (the part shared with ``trace``).

    ``batch_inputs``: signature keys whose axis 0 is the batch (None: every input), the
    sources of the automatic dynamic-batch analysis."""
    with stage("shapes"):
        shaped = proto.GraphDef()
        shaped.CopyFrom(frozen.graph_def)
        _strip_colocation(shaped)
        shapes.set_placeholder_shapes(shaped, frozen.inputs, input_shapes)
        graph = graph_from_graphdef(shaped)
        shapes.annotate(graph, shaped, _feed_by_tensor(frozen, options))
    with stage("partition"):
        minimum = options.minimum_segment_size
        if minimum is None:
            minimum = default_minimum_segment_size(frozen.graph_def)
        plan = partition(graph, support_policy(graph, options), minimum_segment_size=minimum,
                         graph_outputs=tuple(frozen.outputs.values()),
                         prune_small_subgraphs_ratio=options.prune_small_subgraphs_ratio,
                         expensive_op_types=(EXPENSIVE_OP_TYPES if options.drop_cheap_segments
                                             else frozenset()))
    duplicates = None
    if options.flags.extract_weights:
        duplicates = weights.max_num_duplicates(frozen.weights.nbytes,
                                                options.flags.extract_weights)
    compiled = _compiled_batch(options, input_shapes)
    with stage("partition"):  # the batch axes of the partitioned segments
        sources = batchaxes.batch_sources(
            frozen.inputs, input_shapes, frozen.inputs if batch_inputs is None else batch_inputs,
            compiled.batch_size)
        rows = batchaxes.analyze(graph, sources, compiled.batch_size,
                                 options.flags.dynamic_batch)
    with stage("backend"):
        results = _compile_segments(graph, plan, compiled, progress, rows)
    _log_compile(plan, results, options.flags.verbose)
    failed = [(s, r) for s, r, _ in results if not r.ok]
    if failed and options.flags.must_compile:
        names = "; ".join(f"segment {s.index} ({r.reason})" for s, r in failed)
        raise UserError(f"--must-compile: {len(failed)} segment(s) failed to compile: {names}")
    with stage("partition"):  # fusing rewrites the partitioned graph
        mapping, names = _fuse(graph, results, options, duplicates, rows)
        # A TF1 client fetches outputs by their original names (AWS keeps them the same way).
        mapping = restore_output_names(graph, frozen.outputs.values(), mapping)
        fused = graph_to_graphdef(graph)
    if options.workdir:
        with stage("write"):
            output.dump_workdir(options.workdir, shaped, fused, results)
    return CompiledGraph(frozen, shaped, plan, results, names, mapping, fused, graph,
                         supported_op_types_label(options))


def support_policy(graph: Graph, options: CompileOptions) -> SupportPolicy:
    """The per-node policy ``options`` ask for, on a shape-annotated ``graph`` (also what
    ``analyze_model`` counts with, so its numbers agree with the compile's)."""
    if options.builder is not None:
        rule = CallableRule(options.builder)
        return builder_policy(n.name for n in graph
                              if n.op != "Placeholder" and rule.decide(n).ok)
    foldable = constant_foldable(graph) if options.fuse_foldable_nodes else ()
    return default_policy(no_fuse_ops=options.no_fuse_ops,
                          force_fuse_ops=options.force_fuse_ops, op_set=options.op_set,
                          foldable=foldable)


def supported_op_types_label(options: CompileOptions) -> str:
    """What the report says was offered to the device."""
    if options.builder is not None:
        return "the nodes subgraph_builder_function accepts"
    label = f"{options.op_set.label} ({len(options.op_set.ops)} operator types)"
    return label + (", and constant-foldable nodes" if options.fuse_foldable_nodes else "")


def _log_compile(plan: SegmentPlan, results: list, verbose: int) -> None:
    """``--verbose LEVEL``: 1 warns of every CPU fallback, 2 adds each segment's compile log,
    3 the whole partition plan.  Lines go to the ``neuroncli`` logger, which the level lowers
    for them so they show without ``-v``."""
    if verbose < 1:
        return
    level = {1: logging.WARNING, 2: logging.INFO}.get(verbose, logging.DEBUG)
    previous = log.level
    if log.getEffectiveLevel() > level:
        log.setLevel(level)
    try:
        if verbose >= 3:
            log.debug("partition plan:\n%s", plan)
        for segment, result, _ in results:
            if not result.ok:
                log.warning("segment %d falls back to CPU: %s", segment.index, result.reason)
            for line in result.log if verbose >= 2 else ():
                log.info("%s", line)
    finally:
        log.setLevel(previous)


def compile_saved_model(model_dir: str, new_model_dir: str, options: CompileOptions,
                        progress: Progress | None = None,
                        accept: Callable[[CompileReport, str], None] | None = None
                        ) -> CompileReport:
    """Compile ``model_dir`` into ``new_model_dir``; returns the report.

    ``accept(report, directory)`` runs on the complete model in its temporary directory,
    before it is renamed into place: if it raises (a failed ``--verify`` or
    ``--min-on-neuron-ratio`` gate, say), nothing is written."""
    started = time.perf_counter()
    with stage("load"):
        prep = _prepare(model_dir, new_model_dir, options)
    with stage("freeze"):
        frozen = freeze(model_dir, prep.meta_graph, prep.signature_key, prep.signature,
                        extract=options.flags.extract_weights is not None)
    done = compile_frozen(frozen, prep.input_shapes, options, progress,
                          batch_inputs=_open_batch_keys(prep.signature))
    with stage("write"), atomic_output(new_model_dir, input_dir=model_dir,
                                       force=options.force) as tmp:
        saved_model = output.build_saved_model(prep.meta_graph, prep.signature_key,
                                               prep.signature, frozen, done.fused,
                                               done.mapping, done.graph)
        output.write(tmp, model_dir, saved_model, frozen.weights)
        report = report_for(done, model_dir=model_dir, new_model_dir=new_model_dir,
                            signature_key=prep.signature_key,
                            seconds=time.perf_counter() - started)
        # ``--verify`` loads both models into TensorFlow: first let go of the compile's
        # graphs (frozen, shaped, segments, programs), each a copy of the weights.
        del frozen, done, saved_model
        gc.collect()
        if accept is not None:
            with stage("run"):  # --verify runs both models before anything is renamed
                accept(report, tmp)
    return report


def report_for(done: CompiledGraph, *, model_dir: str, new_model_dir: str,
               signature_key: str, seconds: float) -> CompileReport:
    return build_report(model_dir=model_dir, new_model_dir=new_model_dir,
                        signature_key=signature_key, frozen=done.frozen, plan=done.plan,
                        results=done.results, names=done.names, fused=done.fused,
                        seconds=seconds, supported_op_types=done.supported_op_types)


def _strip_colocation(graph_def: Any) -> None:
    """Drop ``_class`` (``loc:@node``) hints: they name nodes that fusing removes or renames,
    and a frozen inference graph on one host has nothing to colocate."""
    for node in graph_def.node:
        if "_class" in node.attr:
            del node.attr["_class"]


def _feed_by_tensor(frozen: FrozenGraph, options: CompileOptions) -> dict[str, Any] | None:
    if not options.feed:
        return None
    by_key = {k: frozen.inputs[k] for k in frozen.inputs}
    by_node = {split_tensor(v)[0]: v for v in frozen.inputs.values()}
    feed = weights.read_feeds(frozen.graph_def, frozen.weights)
    for name, value in options.feed.items():
        tensor = by_key.get(name) or by_node.get(split_tensor(name)[0])
        if tensor is not None:
            feed[tensor] = value
    return feed


def _prepare(model_dir: str, new_model_dir: str, options: CompileOptions) -> _Prepared:
    """All protobuf-only validation, before TensorFlow is imported."""
    options.check_workdir(model_dir)
    loaded = read_saved_model(model_dir)
    meta_graph = select_meta_graph(loaded.saved_model, options.tags)
    key, signature = select_signature(meta_graph, options.signature_def_key)
    input_shapes = shapes.resolve_input_shapes(
        signature, batch_size=options.batch_size, shape_feed=options.input_shapes,
        feed=options.feed)
    check_output_path(new_model_dir, input_dir=model_dir, force=options.force)
    check_model_files(model_dir, [asset.filename for asset in meta_graph.asset_file_def])
    sandbox.check_load_time_ops(meta_graph, is_tf2(meta_graph))
    weights.check_protobuf_limit(model_dir, weights.read_weight_bytes(meta_graph, signature),
                                 meta_graph.graph_def.ByteSize(), options.flags.extract_weights)
    return _Prepared(model_dir, meta_graph, key, signature, input_shapes)


def _open_batch_keys(signature: Any) -> list[str]:
    """Signature inputs whose leading dimension the model leaves open: AWS's TF1 compiler
    considers dynamic batch only for those (a model that fixes its batch keeps it)."""
    return [key for key, shape in shapes.signature_shapes(signature).items()
            if shape is None or (len(shape) > 0 and shape[0] is None)]


def _compiled_batch(options: CompileOptions,
                    input_shapes: dict[str, tuple | None]) -> CompileOptions:
    """The options with ``batch_size`` the batch really compiled: the signature inputs'
    leading dimension, which ``--inputs`` or ``--input-shape`` may set, not only
    ``--batch-size`` (the programs record it)."""
    for key in sorted(input_shapes):
        shape = input_shapes[key]
        if shape and shape[0]:
            return dataclasses.replace(options, batch_size=int(shape[0]))
    return options


def _compile_segments(graph: Graph, plan: SegmentPlan, options: CompileOptions,
                      progress: Progress | None,
                      rows: batchaxes.BatchAnalysis) -> list[tuple[Any, Any, Any]]:
    """``(segment, CompiledSegment, extracted)`` per segment, in plan order."""
    bopts = backend.BackendOptions(batch_size=options.batch_size,
                                   pipeline_cores=options.flags.pipeline_cores)
    inputs = []
    for segment in plan.segments:
        extracted = extract_segment(graph, segment)
        inputs.append((segment, extracted, backend.SegmentInput(
            name=f"segment{segment.index}", graph_def=extracted.graph_def,
            input_names=extracted.input_names, input_dtypes=extracted.input_dtypes,
            input_shapes=extracted.input_shapes, output_names=extracted.output_names,
            header_extra=batchaxes.decide(rows, extracted).header_extra())))
    total = len(inputs)
    done = 0
    if progress:
        progress("compile", 0, total)

    def work(item: tuple) -> backend.CompiledSegment:
        return backend.compile_segment(item[2], bopts)

    results = []
    with ThreadPoolExecutor(max_workers=max(1, min(options.jobs, total or 1))) as pool:
        for (segment, extracted, _), result in zip(inputs, pool.map(work, inputs)):
            results.append((segment, result, extracted))
            done += 1
            if progress:
                progress("compile", done, total)
    return results


def _fuse(graph: Graph, results: list, options: CompileOptions, duplicates: int | None,
          rows: batchaxes.BatchAnalysis) -> tuple[dict[str, str], dict[int, str]]:
    """Replace each compiled segment by its NeuronOp.

    ``duplicates`` overrides ``max_num_duplicates`` (``--extract-weights``).  Returns old
    tensor -> new tensor (for the signature) and segment index -> NeuronOp name.
    """
    ok = [(s, r, e) for s, r, e in results if r.ok]
    pipeline = options.flags.pipeline_cores
    mapping: dict[str, str] = {}
    names: dict[int, str] = {}
    for segment, result, extracted in ok:
        config = neuron_op.model_config(global_cores=pipeline, this_cores=pipeline,
                                        neuron_op_count=len(ok),
                                        executable_bytes=len(result.executable),
                                        max_duplicates=duplicates)
        batch = batchaxes.decide(rows, extracted)
        # Each weight is stored once, in the program (AWS's erase_large_constants).
        graph_def_bytes = erase_large_constants(extracted.graph_def).SerializeToString(
            deterministic=True)
        spec = neuron_op.NeuronOpSpec(
            graph_def=graph_def_bytes, input_names=tuple(extracted.input_names),
            input_dtypes=tuple(extracted.input_dtypes),
            input_shapes=tuple(extracted.input_shapes),
            output_names=tuple(extracted.output_names),
            output_dtypes=tuple(extracted.output_dtypes),
            output_shapes=tuple(extracted.output_shapes),
            executable=result.executable,
            input_batch_axis=batch.input_batch_axis,
            output_batch_axis=batch.output_batch_axis,
            model_config=config)
        # The program header holds the payload's SHA-256 and the segment's boundary names:
        # content enough for a stable, unique name, without hashing 2x the weights again.
        name = segment_digest_name(json.dumps(dataclasses.asdict(result.header),
                                              sort_keys=True).encode())
        mapping.update(fuse_segment(graph, segment, spec, name))
        names[segment.index] = name
    return mapping, names
