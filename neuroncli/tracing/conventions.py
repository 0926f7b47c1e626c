"""How ``trace`` calls the user's function, and tracing it into a flat concrete function.

Calling conventions (as AWS's): a tensor or a list means ``func(example_inputs)``; a tuple
means ``func(*example_inputs)``; a dict means ``func(**example_inputs)``, except for a Keras
model, whose ``call`` takes one ``inputs`` argument: it gets ``func(example_inputs)`` (AWS's
code passes a dict that way to every function; its documentation says ``**``).  Arguments may
be nested lists, tuples and dicts of tensors: they reach ``func`` exactly as ``tf.function``
passes them (``([q, v], k)`` calls ``func([q, v], k)``).  Signature keys are named by
:func:`~neuroncli.tracing.structure.leaf_keys` (``input_0``, ... or the dict keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from neuroncli.errors import UserError
from neuroncli.lazy_tf import import_tensorflow
from neuroncli.tracing.structure import CallStructure, flatten, leaf_keys, pack


@dataclass(frozen=True)
class TracedCall:
    """The flat concrete function of a traced call, its structure and its example leaves."""

    concrete: Any
    structure: CallStructure
    values: list[Any]


def is_keras_model(func: Any) -> bool:
    try:
        import keras
    except ImportError:  # keras is optional: then func is not a Keras model
        return False
    return isinstance(func, keras.Model)


def split_call(func: Any, example_inputs: Any) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of the call ``trace`` makes with ``example_inputs``."""
    if isinstance(example_inputs, dict):
        if is_keras_model(func):
            return (example_inputs,), {}
        return (), dict(example_inputs)
    if isinstance(example_inputs, tuple):
        if any(isinstance(v, dict) for v in example_inputs):
            raise UserError("example_inputs mixes positional and keyword arguments (a tuple "
                            "holding a dict), which trace does not support: pass a tuple "
                            "for func(*args) or a dict for func(**kwargs)")
        return tuple(example_inputs), {}
    return (example_inputs,), {}


def keras_input_names(func: Any) -> tuple[str, ...] | None:
    """A Keras functional model's input names, flat (None for other functions): its calls
    are standardised as Keras does."""
    if not is_keras_model(func):
        return None
    try:
        inputs = func.inputs
    except (AttributeError, ValueError):  # a subclassed model has no symbolic inputs
        return None
    if not inputs:
        return None
    return tuple(str(getattr(t, "name", "")) for t in inputs)


def trace_function(func: Callable, example_inputs: Any, dynamic_batch: bool) -> TracedCall | None:
    """A concrete function with flat tensor inputs and outputs keyed by signature key, and
    the call structure; None when the call has no tensor input."""
    tf = import_tensorflow()
    args, kwargs = split_call(func, example_inputs)
    leaves = flatten((args, kwargs))
    if not leaves:
        return None
    keys = leaf_keys((args, kwargs), "input")
    template_args, template_kwargs = pack((args, kwargs), iter(keys))
    values = [tf.convert_to_tensor(v) for v in leaves]
    specs = []
    for key, tensor in zip(keys, values):
        shape = list(tensor.shape)
        if dynamic_batch and shape:
            shape[0] = None
        specs.append(tf.TensorSpec(shape, tensor.dtype, name=key))
    returned: dict[str, Any] = {}

    def flat(*tensors: Any) -> dict[str, Any]:
        call_args, call_kwargs = pack((template_args, template_kwargs), iter(tensors))
        outputs = func(*call_args, **call_kwargs)
        out_leaves = flatten(outputs)
        if not all(tf.is_tensor(t) for t in out_leaves):
            kinds = sorted({type(t).__name__ for t in out_leaves if not tf.is_tensor(t)})
            raise UserError(f"trace: the function returned {', '.join(kinds)} among its "
                            "outputs: return tensors (in lists, tuples or dicts) only")
        out_keys = leaf_keys(outputs, "output")
        returned["outputs"] = pack(outputs, iter(out_keys))
        return dict(zip(out_keys, out_leaves))

    concrete = tf.function(flat).get_concrete_function(*specs)
    structure = CallStructure(template_args, template_kwargs, returned["outputs"],
                              keras_input_names(func))
    return TracedCall(concrete, structure, values)


def batch_size(values: list[Any]) -> int:
    shape = getattr(values[0], "shape", ())
    return int(shape[0]) if len(shape) and shape[0] else 1
