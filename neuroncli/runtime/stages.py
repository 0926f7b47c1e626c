"""Schedule one inference of a compiled graph: CPU stages and NeuronOp steps, in order.

The compiled graph mixes CPU nodes and NeuronOps.  TensorFlow cannot run a NeuronOp, so a
call alternates: CPU stage 0, the NeuronOps whose inputs are ready, CPU stage 1, ...  Every
tensor is computed once; values cross stages by name.

1. **Waves.**  In topological order, a node's wave is the largest wave among its producers,
   plus one when the producer is a NeuronOp.  CPU nodes of wave w form CPU stage w; NeuronOps
   of wave w run after it.
2. **Boundaries.**  A CPU stage fetches its tensors that a NeuronOp, a later stage or the
   signature needs, and is fed every tensor it reads from elsewhere (signature inputs included:
   placeholders must always be fed).  Control edges that cross a boundary are removed from the
   host graph (the order of the steps already honours them); their source becomes a *target*
   of its own stage so it still runs once.
3. **Constants.**  A fetched tensor computed from constants alone (Const through identities,
   or an extracted weight: a ``ReadVariableOp`` of a variable restored at load that no op of
   the graph writes) never changes: a stage of nothing else runs once, at load, and a
   NeuronOp input that is such a constant is *bound*: wired to the host graph's tensor when
   the program is imported, never fed and never sharded (weights the partitioner left on the
   CPU side cost nothing).
4. **Aliases.**  A stage of nothing but signature placeholders and identities needs no
   TensorFlow call at all: its identities become aliases resolved in Python (the common
   ``Identity`` after the last NeuronOp costs nothing).
5. **Host graph.**  A copy of the compiled graph in which each NeuronOp becomes a feedable
   stand-in with the same name and output ports (a Placeholder, or an IdentityN over
   placeholders), so that ``neuron_op:1`` means the same tensor on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

from neuroncli import proto
from neuroncli.format.neuron_op import shape_proto
from neuroncli.format.weights import HANDLE_OP, READ_OP, WRITER_OPS, is_saver_node
from neuroncli.graph import Graph, Node, graph_from_graphdef, graph_to_graphdef, split_tensor
from neuroncli.runtime.program import Program

_ALIAS_OPS = frozenset({"Identity", "Snapshot", "StopGradient", "PreventGradient"})
# Ops whose value never changes between calls when their inputs don't: a stage made only of
# them is evaluated once at load, and NoOps over them are not worth running as targets.
_PURE_OPS = _ALIAS_OPS | {"Const", "IdentityN", "NoOp"}
_VARIABLE_READ_OPS = frozenset({HANDLE_OP, READ_OP})


@dataclass(frozen=True)
class CpuStage:
    """One TensorFlow call over CPU nodes.

    index: the wave.  feeds / fetches: tensor names.  targets: nodes run for their effects.
    constant: nothing fed and only constants computed: the executor runs it once, at load.
    """

    index: int
    feeds: tuple[str, ...]
    fetches: tuple[str, ...]
    targets: tuple[str, ...]
    constant: bool = False


@dataclass(frozen=True)
class NeuronStep:
    """Run program ``program`` (an index into the model's programs) on a NeuronCore."""

    program: int


Step = Union[CpuStage, NeuronStep]


@dataclass(frozen=True)
class CallSchedule:
    """How to run one call.

    steps: CPU stages and NeuronOp steps in execution order.
    aliases: tensor -> the tensor it equals (identities resolved in Python).
    inputs / outputs: signature key -> tensor name (outputs already resolved through aliases).
    bound: per program, the input positions bound to constant host tensors (see step 3).
    """

    steps: tuple[Step, ...]
    aliases: Mapping[str, str]
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    bound: tuple[tuple[int, ...], ...] = ()

    def resolve(self, tensor: str) -> str:
        while tensor in self.aliases:
            tensor = self.aliases[tensor]
        return tensor


def normalize(ref: str) -> str:
    name, port = split_tensor(ref)
    return f"{name}:{port}"


def _waves(graph: Graph, neuron: Mapping[str, int]) -> dict[str, int]:
    waves: dict[str, int] = {}
    for node in graph.topological_order():
        wave = 0
        for src in node.input_nodes():
            if src in waves:
                wave = max(wave, waves[src] + (1 if src in neuron else 0))
        waves[node.name] = wave
    return waves


class _Scheduler:
    """Steps 1-3 over the IR of the compiled graph."""

    def __init__(self, graph: Graph, programs: Sequence[Program], inputs: Mapping[str, str],
                 outputs: Mapping[str, str]) -> None:
        self.graph = graph
        self.neuron = {p.name: i for i, p in enumerate(programs)}
        self.feed_nodes = {split_tensor(t)[0] for t in inputs.values()}
        self.waves = _waves(graph, self.neuron)
        self.pure = self._pure_nodes()
        self.outputs = outputs
        count = max(self.waves.values(), default=-1) + 1
        self.feeds: list[set[str]] = [set() for _ in range(count)]
        self.fetches: list[set[str]] = [set() for _ in range(count)]
        self.targets: list[set[str]] = [set() for _ in range(count)]
        self.dropped_controls: dict[str, list[str]] = {}

    def _pure_nodes(self) -> set[str]:
        pure: set[str] = set()
        ops = _PURE_OPS
        # The saver's restore ops (for TensorFlow's loaders) never run here: not writers.
        if not any(node.op in WRITER_OPS and not is_saver_node(node.name)
                   for node in self.graph):
            ops = ops | _VARIABLE_READ_OPS
        for node in self.graph.topological_order():
            if node.op in ops and all(src in pure for src in node.input_nodes()):
                pure.add(node.name)
        return pure

    def is_cpu(self, name: str) -> bool:
        return name not in self.neuron

    def schedule_edges(self) -> None:
        for node in self.graph:
            consumer_cpu = self.is_cpu(node.name)
            wave = self.waves[node.name]
            for ref in node.inputs:
                src = split_tensor(ref)[0]
                crossing = (not self.is_cpu(src) or not consumer_cpu or src in self.feed_nodes
                            or self.waves[src] != wave)
                if not crossing:
                    continue
                if consumer_cpu:
                    self.feeds[wave].add(ref)
                if self.is_cpu(src) and src not in self.feed_nodes:
                    self.fetches[self.waves[src]].add(ref)
            for src in node.control_inputs:
                if self.is_cpu(src) and consumer_cpu and self.waves[src] == wave:
                    continue
                self.dropped_controls.setdefault(node.name, []).append(src)
                if self.is_cpu(src) and src not in self.feed_nodes and src not in self.pure:
                    self.targets[self.waves[src]].add(src)
        for ref in self.outputs.values():
            src = split_tensor(ref)[0]
            if self.is_cpu(src) and src not in self.feed_nodes:
                self.fetches[self.waves[src]].add(ref)

    def trivial(self, wave: int) -> bool:
        if self.targets[wave]:
            return False
        for node in self.graph:
            if self.waves[node.name] != wave or not self.is_cpu(node.name):
                continue
            if node.name in self.feed_nodes or node.op in _ALIAS_OPS or node.op == "IdentityN":
                continue
            return False
        return True

    def aliases(self, wave: int) -> dict[str, str]:
        found: dict[str, str] = {}
        for node in self.graph:
            if self.waves[node.name] != wave or not self.is_cpu(node.name):
                continue
            if node.op in _ALIAS_OPS and node.inputs:
                found[f"{node.name}:0"] = node.inputs[0]
            elif node.op == "IdentityN":
                found.update({f"{node.name}:{i}": ref for i, ref in enumerate(node.inputs)})
        return found

    def steps(self) -> tuple[list[Step], dict[str, str]]:
        steps: list[Step] = []
        aliases: dict[str, str] = {}
        by_wave: dict[int, list[int]] = {}
        for node in self.graph.topological_order():
            if node.name in self.neuron:
                by_wave.setdefault(self.waves[node.name], []).append(self.neuron[node.name])
        for wave in range(len(self.feeds)):
            if self.trivial(wave):
                aliases.update(self.aliases(wave))
            elif self.fetches[wave] or self.targets[wave]:
                constant = (not self.feeds[wave] and not self.targets[wave] and all(
                    split_tensor(t)[0] in self.pure for t in self.fetches[wave]))
                steps.append(CpuStage(wave, tuple(sorted(self.feeds[wave])),
                                      tuple(sorted(self.fetches[wave])),
                                      tuple(sorted(self.targets[wave])), constant))
            steps.extend(NeuronStep(i) for i in by_wave.get(wave, []))
        return steps, aliases


def schedule_call(graph_def: Any, programs: Sequence[Program], inputs: Mapping[str, str],
         outputs: Mapping[str, str]) -> tuple[CallSchedule, Any]:
    """The call schedule and the host ``GraphDef`` (step 5) of a compiled ``GraphDef``."""
    inputs = {k: normalize(v) for k, v in inputs.items()}
    outputs = {k: normalize(v) for k, v in outputs.items()}
    graph = graph_from_graphdef(graph_def)
    scheduler = _Scheduler(graph, programs, inputs, outputs)
    scheduler.schedule_edges()
    steps, aliases = scheduler.steps()
    resolved = CallSchedule((), aliases, inputs, outputs)
    constants = {resolved.resolve(t) for stage in steps if isinstance(stage, CpuStage)
                 for t in stage.fetches if split_tensor(t)[0] in scheduler.pure}
    bound = tuple(tuple(i for i, t in enumerate(p.inputs) if resolved.resolve(t) in constants)
                  for p in programs)
    steps = _prune(steps, programs, bound, resolved)
    final = {k: resolved.resolve(v) for k, v in outputs.items()}
    host = _host_graph(graph, programs, scheduler.dropped_controls)
    return CallSchedule(tuple(steps), aliases, inputs, final, bound), graph_to_graphdef(host)


def _prune(steps: list[Step], programs: Sequence[Program], bound: tuple,
           resolved: CallSchedule) -> list[Step]:
    """Drop fetches nobody reads once constants are bound (weights are never fetched)."""
    needed = {resolved.resolve(t) for t in resolved.outputs.values()}
    for step in steps:
        if isinstance(step, CpuStage):
            needed.update(resolved.resolve(t) for t in step.feeds)
        else:
            program = programs[step.program]
            needed.update(resolved.resolve(t) for i, t in enumerate(program.inputs)
                          if i not in bound[step.program])
    kept: list[Step] = []
    for step in steps:
        if isinstance(step, CpuStage):
            fetches = tuple(t for t in step.fetches if resolved.resolve(t) in needed)
            if not fetches and not step.targets:
                continue
            step = CpuStage(step.index, step.feeds, fetches, step.targets, step.constant)
        kept.append(step)
    return kept


def _host_graph(graph: Graph, programs: Sequence[Program],
                dropped: Mapping[str, list[str]]) -> Graph:
    """Step 4: NeuronOps become feedable stand-ins; boundary control edges go."""
    for name, sources in dropped.items():
        node = graph[name]
        node.control_inputs = [s for s in node.control_inputs if s not in sources]
    graph.invalidate()
    for program in programs:
        graph.remove(program.name)
        standins = [_placeholder(graph.unique_name(f"{program.name}/_stand_in_{i}"), dtype,
                                 shape, axis)
                    for i, (dtype, shape, axis) in enumerate(zip(
                        program.output_dtypes, program.output_shapes,
                        program.output_batch_axis))]
        if len(standins) == 1:
            standins[0].name = program.name
            graph.add(standins[0])
            continue
        for node in standins:
            graph.add(node)
        types = proto.AttrValue()
        types.list.type.extend(program.output_dtypes)
        graph.add(Node(name=program.name, op="IdentityN",
                       inputs=[f"{n.name}:0" for n in standins], attrs={"T": types}))
    return graph


def _placeholder(name: str, dtype: int, shape: tuple | None, axis: int) -> Node:
    if shape is not None and axis == 0 and shape:
        shape = (None, *shape[1:])
    attrs = {"dtype": proto.AttrValue(type=dtype),
             "shape": proto.AttrValue(shape=shape_proto(shape))}
    return Node(name=name, op="Placeholder", attrs=attrs)

