"""Run an ORIGINAL (uncompiled) SavedModel in TensorFlow: the oracle for verification.

``run_savedmodel(model_dir, inputs)`` loads the model, runs one signature on a batch of numpy
inputs and returns numpy outputs keyed by the signature's output keys.  ``ReferenceModel``
loads once and can be called many times (the load, seconds for a large model, is paid once).

* TF2 SavedModels (the meta graph carries an object graph: ``tf.saved_model.save``,
  ``keras.Model.export``) run through ``tf.saved_model.load(...).signatures[key]``.
* TF1 SavedModels (``tf.compat.v1.saved_model.Builder``) are loaded into a private
  ``tf.compat.v1.Session`` with ``tf.compat.v1.saved_model.loader.load`` and run by the
  signature's tensor names.  Loading runs the model's restore and init ops: this module
  executes the model by design, unlike the compiler's freeze step.

Tag set and signature are chosen as the compiler chooses them (``serve`` else the first tag set;
``serving_default`` else the first signature key, sorted).  Inputs are checked against the
signature (missing/unknown keys, rank, known dimensions, dtype kind) with a
:class:`~neuroncli.errors.UserError` that names the key; numeric inputs are cast to the
signature dtype when numpy's ``same_kind`` rule allows it (float64 -> float32, int -> float).
String inputs may be ``str``/``bytes`` arrays of any numpy kind (``U``, ``S``, ``O``); string
outputs come back as numpy object arrays of ``bytes``.

TensorFlow is imported lazily (on the first load), never at module import.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Iterable, Mapping

import numpy as np

from neuroncli.errors import UserError
from neuroncli.lazy_tf import import_tensorflow
from neuroncli.runtime.inputs import TensorSpec
from neuroncli.savedmodel import is_tf2, read_saved_model, select_meta_graph, select_signature

__all__ = ["ReferenceModel", "TensorSpec", "run_savedmodel"]



class ReferenceModel:
    """A SavedModel loaded once in TensorFlow, callable many times with numpy inputs.

    ``model(inputs)`` (or ``model.run(inputs)``) returns ``{output_key: np.ndarray}``.
    Use it as a context manager, or call :meth:`close`, to release a TF1 session early.
    Calls are serialized by a lock, so one instance may be shared between threads.
    """

    def __init__(self, model_dir: str | os.PathLike, *, signature_def_key: str | None = None,
                 tags: Iterable[str] | None = None) -> None:
        self.model_dir = os.fspath(model_dir)
        loaded = read_saved_model(self.model_dir)
        meta_graph = select_meta_graph(loaded.saved_model,
                                       None if tags is None else list(tags))
        self.tags: tuple[str, ...] = tuple(meta_graph.meta_info_def.tags)
        self.signature_key, signature = select_signature(meta_graph, signature_def_key)
        self.inputs: dict[str, TensorSpec] = {
            k: TensorSpec.from_tensor_info(k, signature.inputs[k])
            for k in sorted(signature.inputs)}
        self.outputs: dict[str, TensorSpec] = {
            k: TensorSpec.from_tensor_info(k, signature.outputs[k])
            for k in sorted(signature.outputs)}
        self.is_tf2 = is_tf2(meta_graph)
        self._lock = threading.Lock()
        self._session: Any = None
        self._function: Any = None
        self._loaded: Any = None  # keeps the TF2 object graph (and its variables) alive
        try:
            if self.is_tf2:
                self._load_tf2()
            else:
                self._load_tf1()
        except UserError:
            raise
        except Exception as exc:  # TensorFlow raises many types; the message is what matters
            raise UserError(f"{self.model_dir}: TensorFlow could not load the SavedModel "
                            f"(tags {list(self.tags)}): {_first_line(exc)}") from exc

    # ----------------------------------------------------------------------- loading

    def _load_tf2(self) -> None:
        tf = import_tensorflow()
        self._loaded = tf.saved_model.load(self.model_dir, tags=list(self.tags))
        self._function = self._loaded.signatures[self.signature_key]

    def _load_tf1(self) -> None:
        tf = import_tensorflow()
        v1 = tf.compat.v1
        graph = tf.Graph()
        session = v1.Session(graph=graph)
        try:
            with graph.as_default():
                v1.saved_model.loader.load(session, list(self.tags), self.model_dir)
        except BaseException:
            session.close()
            raise
        self._session = session

    # ----------------------------------------------------------------------- running

    def __call__(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return self.run(inputs)

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run the signature on ``inputs`` (keys = signature input keys)."""
        feeds = self.prepare_inputs(inputs)
        with self._lock:
            if self._session is None and self._function is None:
                raise UserError(f"{self.model_dir}: the reference model was closed")
            try:
                if self._function is not None:
                    raw = self._run_tf2(feeds)
                else:
                    raw = self._session.run(
                        {k: spec.name for k, spec in self.outputs.items()},
                        feed_dict={self.inputs[k].name: v for k, v in feeds.items()})
            except Exception as exc:
                raise UserError(f"{self.model_dir}: TensorFlow failed running signature "
                                f"{self.signature_key!r}: {_first_line(exc)}") from exc
        return {k: _to_numpy(raw[k], self.outputs[k]) for k in self.outputs}

    def _run_tf2(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        tf = import_tensorflow()
        args = {k: tf.constant(v, dtype=tf.dtypes.as_dtype(self.inputs[k].dtype))
                for k, v in feeds.items()}
        result = self._function(**args)
        if not isinstance(result, Mapping):
            raise UserError(f"signature {self.signature_key!r} did not return a dict of "
                            "outputs: re-export the model with named outputs")
        missing = sorted(set(self.outputs) - set(result))
        if missing:
            raise UserError(f"signature {self.signature_key!r} declares outputs {missing} "
                            "that the function does not return: re-export the model")
        return {k: result[k].numpy() for k in self.outputs}

    def prepare_inputs(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Check ``inputs`` against the signature and convert them to its dtypes."""
        given = set(inputs)
        missing = sorted(set(self.inputs) - given)
        unknown = sorted(given - set(self.inputs))
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if unknown:
                parts.append(f"unknown {unknown}")
            raise UserError(f"inputs for signature {self.signature_key!r}: "
                            f"{'; '.join(parts)}; expected keys {sorted(self.inputs)}")
        return {k: _convert(inputs[k], spec, self.signature_key)
                for k, spec in self.inputs.items()}

    # ----------------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Release the TF1 session / TF2 objects; further calls raise :class:`UserError`."""
        with self._lock:
            if self._session is not None:
                self._session.close()
            self._session = None
            self._function = None
            self._loaded = None

    def __enter__(self) -> ReferenceModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "TF2" if self.is_tf2 else "TF1"
        return (f"ReferenceModel({self.model_dir!r}, {kind}, signature={self.signature_key!r}, "
                f"inputs={list(self.inputs)}, outputs={list(self.outputs)})")


def run_savedmodel(model_dir: str | os.PathLike, inputs: Mapping[str, Any], *,
                   signature_def_key: str | None = None,
                   tags: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Load the SavedModel at ``model_dir``, run one signature on ``inputs``, return outputs.

    Keys of ``inputs`` and of the result are the signature's input/output keys.  For many
    calls on the same model use :class:`ReferenceModel`, which loads once.
    """
    with ReferenceModel(model_dir, signature_def_key=signature_def_key, tags=tags) as model:
        return model.run(inputs)


# --------------------------------------------------------------------------- helpers

_BOILERPLATE = ("Graph execution error", "Detected at node", "<stack traces",
                "[[", "The above exception", "Traceback", "File ")


def _first_line(exc: BaseException) -> str:
    """The informative line of a TensorFlow error (its op message, not the boilerplate)."""
    text = str(getattr(exc, "message", None) or exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(_BOILERPLATE):
            return line[:300]
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _numpy_dtype(dtype: int) -> np.dtype:
    tf = import_tensorflow()
    return np.dtype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)


def _convert(value: Any, spec: TensorSpec, signature_key: str) -> np.ndarray:
    where = f"input {spec.key!r} of signature {signature_key!r}"
    if spec.is_string:
        array = np.asarray(value)
        if array.dtype.kind not in "USO":
            raise UserError(f"{where} is a string tensor but got {array.dtype} values")
        array = np.vectorize(_to_bytes, otypes=[object])(array) if array.size else \
            array.astype(object)
    else:
        target = _numpy_dtype(spec.dtype)
        array = np.asarray(value)
        if array.dtype.kind in "USO" or not np.can_cast(array.dtype, target, "same_kind"):
            raise UserError(f"{where} is {target} but got {array.dtype} values")
        array = array.astype(target, copy=False)
    if spec.shape is not None:
        if array.ndim != len(spec.shape):
            raise UserError(f"{where} has rank {len(spec.shape)} (shape {_fmt(spec.shape)}) "
                            f"but got shape {list(array.shape)}")
        for axis, (want, got) in enumerate(zip(spec.shape, array.shape)):
            if want is not None and want != got:
                raise UserError(f"{where} has shape {_fmt(spec.shape)} but got "
                                f"{list(array.shape)} (dimension {axis})")
    return array


def _to_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, np.bytes_):
        return bytes(item)
    raise UserError(f"string input holds a {type(item).__name__}, not str/bytes")


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def _to_numpy(value: Any, spec: TensorSpec) -> np.ndarray:
    array = np.asarray(value)
    if spec.is_string and array.dtype != object:
        array = array.astype(object)
    return array
