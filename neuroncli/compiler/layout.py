"""Channels-first ops made runnable on any CPU: NCHW/NCDHW -> NHWC/NDHWC inside the program.

TensorFlow's CPU kernels for convolutions and pools support only channels-last layouts;
channels-first works on some hosts only because oneDNN's graph pass (or grappler's layout
optimizer, which the runtime's sessions skip) rewrites them.  A program must run wherever
its graph is executed, so the compiler rewrites each channels-first op of a segment's
optimized graph (the program's payload) into::

    Transpose(x, to_last) -> op(data_format=NHWC, per-dimension attributes permuted)
                          -> Transpose(., to_first)   named like the original op

The last Transpose takes the original node's name, so consumers, control edges and the
program's output names are untouched.  ``Conv*BackpropInput*`` take the output size as a
tensor: it goes through a ``GatherV2`` with the same permutation.  Ops whose CPU kernels do
accept channels-first (``BiasAdd``, ``FusedBatchNorm*``, ``LRN``) are left alone.
Protobuf only; deterministic (new nodes are appended in graph order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuroncli.proto.dtypes import dtype_enum

DT_INT32 = dtype_enum("DT_INT32")


@dataclass(frozen=True)
class _Layout:
    """A channels-first format, its channels-last twin and the permutations between them."""

    last: str
    to_last: tuple[int, ...]
    to_first: tuple[int, ...]


_LAYOUTS = {
    b"NCHW": _Layout("NHWC", (0, 2, 3, 1), (0, 3, 1, 2)),
    b"NCDHW": _Layout("NDHWC", (0, 2, 3, 4, 1), (0, 4, 1, 2, 3)),
}
# op -> index of its data input; the ops whose CPU kernels reject channels-first.
DATA_INPUT = {
    "Conv2D": 0, "DepthwiseConv2dNative": 0, "Conv3D": 0, "MaxPool": 0, "AvgPool": 0,
    "MaxPool3D": 0, "AvgPool3D": 0, "SpaceToDepth": 0, "DepthToSpace": 0,
    "Conv2DBackpropInput": 2, "Conv3DBackpropInputV2": 2,
}
_SIZES_INPUT = {"Conv2DBackpropInput": 0, "Conv3DBackpropInputV2": 0}
_PER_DIM_ATTRS = ("strides", "dilations", "ksize")
SUFFIX = "neuroncli_nhwc"


def channels_first_nodes(graph_def: Any) -> list[Any]:
    """The nodes :func:`to_channels_last` rewrites."""
    return [node for node in graph_def.node
            if node.op in DATA_INPUT and node.attr["data_format"].s in _LAYOUTS]


def to_channels_last(graph_def: Any) -> int:
    """Rewrite every channels-first op of ``graph_def`` in place; returns how many."""
    nodes = channels_first_nodes(graph_def)
    taken = {node.name for node in graph_def.node}
    for node in nodes:
        _rewrite(graph_def, node, taken)
    return len(nodes)


def _unique(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _rewrite(graph_def: Any, node: Any, taken: set[str]) -> None:
    layout = _LAYOUTS[node.attr["data_format"].s]
    original = node.name
    scope = _unique(f"{original}/{SUFFIX}", taken)
    dtype = node.attr["T"].type
    data = DATA_INPUT[node.op]
    node.input[data] = _transpose(graph_def, f"{scope}/to_last", node.input[data],
                                  layout.to_last, dtype, node.device, taken)
    if node.op in _SIZES_INPUT:
        index = _SIZES_INPUT[node.op]
        sizes_dtype = node.attr["Tshape"].type if "Tshape" in node.attr else DT_INT32
        node.input[index] = _gather(graph_def, f"{scope}/sizes", node.input[index],
                                    layout.to_last, sizes_dtype, node.device, taken)
    node.attr["data_format"].s = layout.last.encode()
    for key in _PER_DIM_ATTRS:
        if key in node.attr and len(node.attr[key].list.i) == len(layout.to_last):
            values = list(node.attr[key].list.i)
            node.attr[key].list.i[:] = [values[i] for i in layout.to_last]
    paddings = node.attr["explicit_paddings"].list.i if "explicit_paddings" in node.attr else []
    if len(paddings) == 2 * len(layout.to_last):
        pairs = [tuple(paddings[2 * i:2 * i + 2]) for i in range(len(layout.to_last))]
        node.attr["explicit_paddings"].list.i[:] = [v for i in layout.to_last
                                                    for v in pairs[i]]
    node.name = scope
    # The Transpose back is appended under the original name: consumers see no change.
    back = graph_def.node.add(name=original, op="Transpose", device=node.device)
    back.input.extend([f"{scope}:0", _perm(graph_def, f"{scope}/to_first/perm",
                                           layout.to_first, taken)])
    back.attr["T"].type = dtype
    back.attr["Tperm"].type = DT_INT32


def _perm(graph_def: Any, base: str, values: tuple[int, ...], taken: set[str]) -> str:
    const = graph_def.node.add(name=_unique(base, taken), op="Const")
    const.attr["dtype"].type = DT_INT32
    tensor = const.attr["value"].tensor
    tensor.dtype = DT_INT32
    tensor.tensor_shape.dim.add(size=len(values))
    tensor.int_val.extend(values)
    return const.name


def _transpose(graph_def: Any, base: str, source: str, perm: tuple[int, ...], dtype: int,
               device: str, taken: set[str]) -> str:
    node = graph_def.node.add(name=_unique(base, taken), op="Transpose", device=device)
    node.input.extend([source, _perm(graph_def, f"{base}/perm", perm, taken)])
    node.attr["T"].type = dtype
    node.attr["Tperm"].type = DT_INT32
    return node.name


def _gather(graph_def: Any, base: str, source: str, perm: tuple[int, ...], dtype: int,
            device: str, taken: set[str]) -> str:
    node = graph_def.node.add(name=_unique(base, taken), op="GatherV2", device=device)
    axis = graph_def.node.add(name=_unique(f"{base}/axis", taken), op="Const")
    axis.attr["dtype"].type = DT_INT32
    axis.attr["value"].tensor.dtype = DT_INT32
    axis.attr["value"].tensor.int_val.append(0)
    node.input.extend([source, _perm(graph_def, f"{base}/perm", perm, taken), axis.name])
    node.attr["Tparams"].type = dtype
    node.attr["Tindices"].type = DT_INT32
    node.attr["Taxis"].type = DT_INT32
    node.attr["batch_dims"].i = 0
    return node.name
