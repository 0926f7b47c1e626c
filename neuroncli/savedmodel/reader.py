"""Read a SavedModel directory and choose its meta graph and signature (protobuf only).

Every failure here is a :class:`~neuroncli.errors.UserError` naming the path or key and the
fix; nothing imports TensorFlow.  Choices made for the user (a tag set or a signature that was
not asked for) are reported through :mod:`logging` as warnings.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Iterable

from google.protobuf.message import DecodeError

from neuroncli import proto
from neuroncli.errors import UserError

log = logging.getLogger("neuroncli")

SERVE = "serve"
DEFAULT_SIGNATURE = "serving_default"
_PB = "saved_model.pb"
_PBTXT = "saved_model.pbtxt"
# protobuf refuses messages over 2 GiB anyway; a SavedModel proto larger than that is hostile.
_MAX_PB_BYTES = (2 << 30) - 1


@dataclass(frozen=True)
class LoadedSavedModel:
    """A parsed ``saved_model.pb`` and where it came from."""

    path: str
    saved_model: Any  # proto.SavedModel

    @property
    def meta_graphs(self) -> list[Any]:
        return list(self.saved_model.meta_graphs)


def saved_model_file(model_dir: str | os.PathLike) -> str:
    """``model_dir/saved_model.pb``, with a clear error for every way it can be missing."""
    path = os.fspath(model_dir)
    if not path:
        raise UserError("the model directory is an empty string: pass the SavedModel directory")
    if not os.path.exists(path):
        raise UserError(f"{path}: no such directory: pass the SavedModel directory")
    if not os.path.isdir(path):
        raise UserError(f"{path}: not a directory: pass the SavedModel directory, "
                        f"not the {os.path.basename(path)} file")
    pb = os.path.join(path, _PB)
    if os.path.lexists(pb) and not os.path.isfile(pb):
        # a directory or a FIFO where the file should be; opening a FIFO would block forever
        kind = "a directory" if os.path.isdir(pb) else "not a regular file"
        raise UserError(f"{pb}: is {kind}: it must be the binary SavedModel protobuf: "
                        "re-export the model")
    if not os.path.isfile(pb):
        if os.path.isfile(os.path.join(path, _PBTXT)):
            raise UserError(f"{path}: only saved_model.pbtxt found; neuroncli reads binary "
                            "SavedModels: re-save it with tf.saved_model.save")
        raise UserError(f"{path}: no saved_model.pb: this is not a SavedModel directory")
    return pb


def read_saved_model(model_dir: str | os.PathLike) -> LoadedSavedModel:
    """Parse ``model_dir/saved_model.pb`` with clear errors for every way it can be wrong."""
    path = os.fspath(model_dir)
    pb = saved_model_file(path)
    try:
        size = os.path.getsize(pb)
        if size > _MAX_PB_BYTES:
            raise UserError(f"{pb}: {size} bytes is over protobuf's 2 GiB limit")
        with open(pb, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UserError(_cannot_read(pb, exc)) from None
    saved_model = proto.SavedModel()
    try:
        saved_model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):
        raise UserError(f"{pb}: not a valid SavedModel protobuf (truncated or corrupt): "
                        "re-export the model") from None
    if not saved_model.meta_graphs:
        raise UserError(_no_meta_graph(pb))
    return LoadedSavedModel(path=path, saved_model=saved_model)


def _cannot_read(pb: str, exc: OSError) -> str:
    return f"{pb}: cannot read it ({exc.strerror}): make it readable by this user"


def _no_meta_graph(pb: str) -> str:
    return f"{pb}: the SavedModel holds no meta graph (truncated or corrupt): re-export the model"


def open_saved_model_view(model_dir: str | os.PathLike) -> Any:
    """A lazy :class:`~neuroncli.format.view.SavedModelView`, with the same clear errors as
    :func:`read_saved_model` but without parsing the (possibly huge) graphs."""
    from neuroncli.format.view import open_view
    from neuroncli.format.wire import WireError
    path = os.fspath(model_dir)
    pb = saved_model_file(path)
    try:
        view = open_view(path)
    except OSError as exc:
        raise UserError(_cannot_read(pb, exc)) from None
    except (WireError, DecodeError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        detail = f": {reason}" if reason else ""
        raise UserError(f"{pb}: not a valid SavedModel protobuf (truncated or corrupt{detail}): "
                        "re-export the model") from None
    if not view.meta_graphs:
        view.close()
        raise UserError(_no_meta_graph(pb))
    return view


def tag_sets(saved_model: Any) -> list[tuple[str, ...]]:
    return [tuple(mg.meta_info_def.tags) for mg in saved_model.meta_graphs]


def _fmt_tags(tags: Iterable[str]) -> str:
    return "{" + ",".join(sorted(tags)) + "}"


def select_meta_graph(saved_model: Any, tags: Iterable[str] | None = None) -> Any:
    """The MetaGraphDef with exactly ``tags``; by default ``{serve}``, else the first."""
    graphs = list(saved_model.meta_graphs)
    if tags is not None:
        wanted = set(tags)
        for mg in graphs:
            if set(mg.meta_info_def.tags) == wanted:
                return mg
        known = ", ".join(_fmt_tags(t) for t in tag_sets(saved_model)) or "none"
        raise UserError(f"no meta graph with tag set {_fmt_tags(wanted)}; "
                        f"the model has: {known}: pass one of them with --tag_set")
    for mg in graphs:
        if set(mg.meta_info_def.tags) == {SERVE}:
            return mg
    chosen = graphs[0]
    log.warning("no meta graph tagged exactly {serve}; using the first, tagged %s",
                _fmt_tags(chosen.meta_info_def.tags))
    return chosen


def select_signature(meta_graph: Any, key: str | None = None) -> tuple[str, Any]:
    """``(key, SignatureDef)``; by default ``serving_default``, else the first key (sorted)."""
    signatures = meta_graph.signature_def
    if key is not None:
        if key not in signatures:
            known = ", ".join(sorted(signatures)) or "none"
            raise UserError(f"no signature {key!r} in the meta graph; it has: {known}: "
                            "pass one of them with --signature_def")
        chosen = key
    elif DEFAULT_SIGNATURE in signatures:
        chosen = DEFAULT_SIGNATURE
    else:
        keys = sorted(k for k in signatures if not k.startswith("__"))
        if not keys:
            raise UserError("the meta graph has no signature: re-export the model with a "
                            "serving signature")
        chosen = keys[0]
        log.warning("no %r signature; using %r", DEFAULT_SIGNATURE, chosen)
    signature = signatures[chosen]
    _check_signature(chosen, signature)
    return chosen, signature


def _check_signature(key: str, signature: Any) -> None:
    # Grappler aborts the whole process on a TensorInfo without a dtype: refuse it up front.
    for kind, infos in (("input", signature.inputs), ("output", signature.outputs)):
        for name in sorted(infos):
            info = infos[name]
            if not info.name:
                raise UserError(f"signature {key!r} {kind} {name!r} has no tensor name "
                                "(composite tensors are not supported): re-export the model")
            if info.dtype == 0:
                raise UserError(f"signature {key!r} {kind} {name!r} has no dtype: re-export "
                                "the model with explicit TensorSpecs")
    if not signature.outputs:
        raise UserError(f"signature {key!r} has no outputs: nothing to compile")


def is_tf2(meta_graph: Any) -> bool:
    """TF2 SavedModels (tf.saved_model.save, keras export) carry an object graph."""
    return len(meta_graph.object_graph_def.nodes) > 0


def count_neuron_ops(model_dir: str | os.PathLike) -> int:
    """NeuronOps in every meta graph (library functions included), from the memory map."""
    view = open_saved_model_view(model_dir)
    try:
        return sum(len(meta.neuron_ops) for meta in view.meta_graphs)
    finally:
        view.close()


def refuse_uncompiled(model_dir: str | os.PathLike) -> None:
    """Refuse an original SavedModel where a compiled one is needed (``runtime.load``).

    Not "no NeuronOp": a model whose segments all fell back to the CPU has none and is still
    compiled.  An original is a model with no NeuronOp whose meta graph carries what only an
    exporter writes: an object graph (TF2) or a saver (TF1); the compiler writes neither.
    Only a model with ``variables/`` can need its weights restored, so a model without it
    costs one ``stat``; the others are read from the memory map, graphs unparsed.
    """
    path = os.fspath(model_dir)
    if not os.path.isdir(os.path.join(path, "variables")):
        return
    view = open_saved_model_view(path)
    try:
        compiled = any(meta.neuron_ops for meta in view.meta_graphs)
        exported = any(len(meta.meta.object_graph_def.nodes) or meta.meta.HasField("saver_def")
                       for meta in view.meta_graphs)
    finally:
        view.close()
    if exported and not compiled:
        raise UserError(f"{path}: not a compiled model (no NeuronOp; this is an original "
                        "SavedModel): run neuron-compile first")
