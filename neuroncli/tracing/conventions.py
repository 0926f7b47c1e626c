"""How ``trace`` calls the user's function, and tracing it into a flat concrete function.

Calling conventions (as AWS's): a tensor or a list of tensors means ``func(example_inputs)``;
a tuple means ``func(*example_inputs)``; a dict means ``func(**example_inputs)``.  Inputs get
signature keys ``input_0``, ``input_1``, ... (dict keys for a dict); outputs ``output_0``, ...
(dict keys for a dict).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from neuroncli.errors import UserError
from neuroncli.lazy_tf import import_tensorflow

POSITIONAL, STAR, KEYWORDS = "positional", "star", "keywords"


@dataclass(frozen=True)
class Convention:
    """How ``func`` is called and how its inputs map to signature keys."""

    kind: str            # POSITIONAL: func(x) / func([x, y]); STAR: func(*t); KEYWORDS: func(**d)
    keys: tuple[str, ...]
    is_list: bool = False


def convention(example_inputs: Any) -> tuple[Convention, list[Any]]:
    if isinstance(example_inputs, dict):
        if any(isinstance(v, (dict, list, tuple)) for v in example_inputs.values()):
            raise UserError("example_inputs: a dict must map names to tensors (nested "
                            "structures are not supported)")
        keys = tuple(sorted(str(k) for k in example_inputs))
        return Convention(KEYWORDS, keys), [example_inputs[k] for k in sorted(example_inputs)]
    if isinstance(example_inputs, tuple):
        if any(isinstance(v, dict) for v in example_inputs):
            raise UserError("example_inputs mixes positional and keyword arguments (a tuple "
                            "holding a dict), which trace does not support: pass a tuple "
                            "for func(*args) or a dict for func(**kwargs)")
        items = list(example_inputs)
        return Convention(STAR, tuple(f"input_{i}" for i in range(len(items)))), items
    if isinstance(example_inputs, list):
        if any(isinstance(v, (dict, list, tuple)) for v in example_inputs):
            raise UserError("example_inputs: a list must hold tensors only")
        items = list(example_inputs)
        return Convention(POSITIONAL, tuple(f"input_{i}" for i in range(len(items))),
                           is_list=True), items
    return Convention(POSITIONAL, ("input_0",)), [example_inputs]


def call(func: Callable, conv: Convention, values: list[Any]) -> Any:
    if conv.kind == KEYWORDS:
        return func(**dict(zip(conv.keys, values)))
    if conv.kind == STAR:
        return func(*values)
    return func(list(values) if conv.is_list else values[0])


def flatten_outputs(outputs: Any) -> tuple[dict[str, Any], str]:
    if isinstance(outputs, dict):
        return {str(k): outputs[k] for k in sorted(outputs)}, "dict"
    if isinstance(outputs, (list, tuple)):
        return {f"output_{i}": t for i, t in enumerate(outputs)}, type(outputs).__name__
    return {"output_0": outputs}, "tensor"


def trace_function(func: Callable, conv: Convention, values: list[Any],
                    dynamic_batch: bool) -> tuple[Any, str, tuple[str, ...]]:
    """A concrete function with flat tensor inputs, and the output structure."""
    tf = import_tensorflow()
    specs = []
    for key, value in zip(conv.keys, values):
        tensor = tf.convert_to_tensor(value)
        shape = list(tensor.shape)
        if dynamic_batch and shape:
            shape[0] = None
        specs.append(tf.TensorSpec(shape, tensor.dtype, name=key))
    structure: dict[str, Any] = {}

    def flat(*tensors: Any) -> dict[str, Any]:
        outputs, kind = flatten_outputs(call(func, conv, list(tensors)))
        structure["kind"] = kind
        return outputs

    concrete = tf.function(flat).get_concrete_function(*specs)
    return concrete, structure["kind"], tuple(sorted(concrete.structured_outputs))


def batch_size(values: list[Any]) -> int:
    shape = getattr(values[0], "shape", ())
    return int(shape[0]) if len(shape) and shape[0] else 1
