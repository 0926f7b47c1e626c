"""The nested call structure of a traced function: flatten, pack, bind calls, save and read it.

A traced function is called with nested lists, tuples and dicts of tensors (``([q, v], k)``,
``{"a": [t0, t1]}``) and may return any such nest.  The compiled SavedModel has flat
signatures, so a :class:`CallStructure` remembers the nest, with the signature keys at its
leaves: the call's positional and keyword arguments (TensorFlow's ``(args, kwargs)``
convention) and the outputs.  Leaves are ordered as ``tf.nest`` orders them (dicts by sorted
key), so flattening here and in TensorFlow agree.

The structure is saved with the model, in the meta graph's ``meta_info_def.any_info``, as
TensorFlow's own ``StructuredValue`` (the message a TF2 SavedModel uses for a function's
input and output signatures; the leaves are ``TensorSpecProto`` named by signature key), so
``neuroncli.load`` of a saved trace is called and answers like the traced model.  TensorFlow
and TF Serving ignore ``any_info``.

A Keras functional model standardises what it is fed (a dict by input name for a list of
inputs, one tensor for a one-input list, a missing or extra trailing unit dimension); a traced
Keras model records its input names and does the same.  Protobuf and numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from neuroncli import proto
from neuroncli.errors import UserError

STRUCTURE_TYPE_URL = "type.googleapis.com/tensorflow.StructuredValue"
_SEQUENCES = (list, tuple)


def flatten(value: Any) -> list[Any]:
    """Leaves of a nest of lists, tuples and dicts, in ``tf.nest`` order."""
    if isinstance(value, Mapping):
        return [leaf for key in _sorted_keys(value) for leaf in flatten(value[key])]
    if isinstance(value, _SEQUENCES):
        return [leaf for item in value for leaf in flatten(item)]
    return [value]


def pack(template: Any, leaves: Iterator[Any]) -> Any:
    """``template``'s nest with its leaves taken in order from ``leaves``."""
    if isinstance(template, Mapping):
        return {key: pack(template[key], leaves) for key in _sorted_keys(template)}
    if isinstance(template, _SEQUENCES):
        return type(template)(pack(item, leaves) for item in template)
    return next(leaves)


def _sorted_keys(mapping: Mapping) -> list[str]:
    if not all(isinstance(key, str) for key in mapping):
        raise UserError(f"dict keys must be strings, got {sorted(map(repr, mapping))}: "
                        "trace names signature inputs and outputs after them")
    return sorted(mapping)


def leaf_keys(value: Any, prefix: str) -> list[str]:
    """Signature keys for the leaves: the dict key holding each leaf when every leaf has a
    distinct one (``{"left": a, "right": b}``), else ``<prefix>_0``, ``<prefix>_1``, ..."""
    names: list[str | None] = []

    def walk(item: Any, key: str | None) -> None:
        if isinstance(item, Mapping):
            for name in _sorted_keys(item):
                walk(item[name], name)
        elif isinstance(item, _SEQUENCES):
            for inner in item:
                walk(inner, None)
        else:
            names.append(key)

    walk(value, None)
    if all(names) and len(set(names)) == len(names):
        return [str(n) for n in names]
    return [f"{prefix}_{i}" for i in range(len(names))]


@dataclass(frozen=True)
class CallStructure:
    """How a traced function is called and what it returns; leaves are signature keys.

    args / kwargs: the positional and keyword arguments.  outputs: the returned nest.
    keras_inputs: a Keras functional model's input names in flat order (its feeds are
    standardised like Keras's), else None.
    """

    args: tuple
    kwargs: dict
    outputs: Any
    keras_inputs: tuple[str, ...] | None = None

    @property
    def input_keys(self) -> list[str]:
        return flatten((self.args, self.kwargs))

    @property
    def output_keys(self) -> list[str]:
        return flatten(self.outputs)

    def describe(self) -> str:
        """``model([input_0, input_1], input_2)``: how to call the traced model."""
        parts = [_render(a) for a in self.args]
        parts += [f"{k}={_render(self.kwargs[k])}" for k in sorted(self.kwargs)]
        return f"model({', '.join(parts)})"

    def bind(self, args: tuple, kwargs: dict, shapes: Mapping[str, tuple | None]) -> dict:
        """Call arguments -> ``{signature key: value}``; ``shapes`` (key -> signature shape)
        is what Keras's rank standardisation compares with."""
        if self.keras_inputs is not None:
            args = self._keras_args(args, kwargs)
        problem = self._arity(args, kwargs) or _mismatch(self.args, args, "arguments") or \
            _mismatch(self.kwargs, kwargs, "keyword arguments")
        if problem:
            raise UserError(f"this traced model is called as {self.describe()}: {problem}")
        feeds = dict(zip(self.input_keys, _flatten_like((self.args, self.kwargs),
                                                        (args, kwargs))))
        if self.keras_inputs is not None:
            feeds = {k: _keras_rank(k, v, shapes.get(k)) for k, v in feeds.items()}
        return feeds

    def _arity(self, args: tuple, kwargs: dict) -> str | None:
        if len(args) != len(self.args):
            return f"it takes {len(self.args)} positional argument(s), got {len(args)}"
        if set(kwargs) != set(self.kwargs):
            want = ", ".join(sorted(self.kwargs)) or "none"
            return f"it takes keyword arguments {want}, got {', '.join(sorted(kwargs))}"
        return None

    def _keras_args(self, args: tuple, kwargs: dict) -> tuple:
        if len(args) != 1 or kwargs or len(self.args) != 1:
            return args
        template, value = self.args[0], args[0]
        names = self.keras_inputs or ()
        if isinstance(value, Mapping) and not isinstance(template, Mapping) \
                and set(names) <= set(value):
            value = [value[n] for n in names]
            if not isinstance(template, _SEQUENCES) and len(value) == 1:
                value = value[0]
        if isinstance(template, _SEQUENCES) and len(template) == 1 \
                and not isinstance(value, (Mapping, *_SEQUENCES)):
            value = [value]
        elif not isinstance(template, (Mapping, *_SEQUENCES)) \
                and isinstance(value, _SEQUENCES) and len(value) == 1:
            value = value[0]
        return (value,)

    # -- saved form ---------------------------------------------------------------------------
    def to_proto(self, signature: Any) -> Any:
        """The ``StructuredValue`` saved in ``any_info`` (leaves described by ``signature``)."""
        value = proto.StructuredValue()
        fields = value.dict_value.fields
        _encode(fields["args"], self.args, signature.inputs)
        _encode(fields["kwargs"], self.kwargs, signature.inputs)
        _encode(fields["outputs"], self.outputs, signature.outputs)
        if self.keras_inputs is None:
            fields["keras_inputs"].none_value.SetInParent()
        else:
            names = fields["keras_inputs"].list_value
            names.SetInParent()
            for name in self.keras_inputs:
                names.values.add().string_value = name
        return value

    @classmethod
    def from_proto(cls, value: Any) -> CallStructure:
        fields = value.dict_value.fields
        missing = {"args", "kwargs", "outputs"} - set(fields)
        if missing:
            raise UserError(f"the saved call structure lacks {sorted(missing)}: trace and "
                            "save the model again")
        keras = fields["keras_inputs"] if "keras_inputs" in fields else None
        names = None if keras is None or keras.WhichOneof("kind") != "list_value" else \
            tuple(v.string_value for v in keras.list_value.values)
        return cls(tuple(_decode(fields["args"])), dict(_decode(fields["kwargs"])),
                   _decode(fields["outputs"]), names)


def saved_structure(meta_info_def: Any) -> CallStructure | None:
    """The call structure a saved trace carries, or None for any other model."""
    if not meta_info_def.HasField("any_info") or \
            meta_info_def.any_info.type_url != STRUCTURE_TYPE_URL:
        return None
    value = proto.StructuredValue()
    if not meta_info_def.any_info.Unpack(value):
        return None
    return CallStructure.from_proto(value)


def _flatten_like(template: Any, value: Any) -> list[Any]:
    """``value``'s leaves where ``template`` has them (a nested Python list fed for one
    tensor stays one leaf)."""
    if isinstance(template, Mapping):
        return [leaf for k in sorted(template) for leaf in _flatten_like(template[k], value[k])]
    if isinstance(template, _SEQUENCES):
        return [leaf for t, v in zip(template, value) for leaf in _flatten_like(t, v)]
    return [value]


def traced_call(meta_info_def: Any) -> str | None:
    """``model(...) -> outputs`` of a saved trace (``neuron-inspect``); None for other models."""
    from google.protobuf.message import DecodeError
    try:
        structure = saved_structure(meta_info_def)
    except (UserError, DecodeError, RecursionError):
        return "unreadable: trace and save the model again"
    if structure is None:
        return None
    return f"{structure.describe()} -> {_render(structure.outputs)}"


def _render(template: Any) -> str:
    if isinstance(template, Mapping):
        return "{" + ", ".join(f"{k!r}: {_render(template[k])}" for k in sorted(template)) + "}"
    if isinstance(template, tuple):
        return "(" + ", ".join(_render(t) for t in template) + ("," if len(template) == 1
                                                                 else "") + ")"
    if isinstance(template, list):
        return "[" + ", ".join(_render(t) for t in template) + "]"
    return str(template)


def _mismatch(template: Any, value: Any, where: str) -> str | None:
    """Why ``value`` does not have ``template``'s nest (lists and tuples are interchangeable,
    as in AWS's model, which flattens its arguments); None when it does."""
    if isinstance(template, Mapping):
        if not isinstance(value, Mapping) or set(value) != set(template):
            got = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            return f"{where}: expected keys {sorted(template)}, got {got}"
        return next((m for k in sorted(template)
                     if (m := _mismatch(template[k], value[k], f"{where}[{k!r}]"))), None)
    if isinstance(template, _SEQUENCES):
        if not isinstance(value, _SEQUENCES) or len(value) != len(template):
            got = f"{len(value)} item(s)" if isinstance(value, _SEQUENCES) else \
                type(value).__name__
            return f"{where}: expected {len(template)} item(s), got {got}"
        return next((m for i, (t, v) in enumerate(zip(template, value))
                     if (m := _mismatch(t, v, f"{where}[{i}]"))), None)
    if isinstance(value, Mapping):
        return f"{where}: expected a tensor, got a dict"
    return None


def _keras_rank(key: str, value: Any, shape: tuple | None) -> Any:
    """Keras's ``_adjust_input_rank``: drop or add a trailing unit dimension."""
    if shape is None:
        return value
    numpy = getattr(value, "numpy", None)
    array = numpy() if callable(numpy) else np.asarray(value)
    if array.ndim == len(shape) + 1 and array.shape[-1:] == (1,):
        return np.squeeze(array, axis=-1)
    if array.ndim == len(shape) - 1 and shape and shape[-1] == 1:
        return np.expand_dims(array, axis=-1)
    return array


def _encode(out: Any, template: Any, infos: Any) -> None:
    if isinstance(template, Mapping):
        out.dict_value.SetInParent()
        for key in _sorted_keys(template):
            _encode(out.dict_value.fields[key], template[key], infos)
    elif isinstance(template, _SEQUENCES):
        values = (out.tuple_value if isinstance(template, tuple) else out.list_value)
        values.SetInParent()
        for item in template:
            _encode(values.values.add(), item, infos)
    else:
        spec = out.tensor_spec_value
        spec.name = template
        if template in infos:
            spec.dtype = infos[template].dtype
            spec.shape.CopyFrom(infos[template].tensor_shape)


def _decode(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "dict_value":
        return {k: _decode(value.dict_value.fields[k]) for k in sorted(value.dict_value.fields)}
    if kind == "tuple_value":
        return tuple(_decode(v) for v in value.tuple_value.values)
    if kind == "list_value":
        return [_decode(v) for v in value.list_value.values]
    if kind == "tensor_spec_value":
        return value.tensor_spec_value.name
    raise UserError(f"the saved call structure holds a {kind}, which neuroncli does not "
                    "write: trace and save the model again")
