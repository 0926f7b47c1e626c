"""TensorFlow's protobuf message classes, without importing TensorFlow.

Importing ``tensorflow.core.protobuf.saved_model_pb2`` runs ``tensorflow/__init__.py`` (about
3-5 s).  The installed wheel ships no ``.proto`` files, but every generated ``*_pb2.py`` embeds
its serialized ``FileDescriptorProto`` as the argument of ``AddSerializedFile``.  We read those
bytes with :mod:`ast` (never executing TensorFlow's code), add them to protobuf's *default*
descriptor pool under TensorFlow's own file names, and build message classes from the pool.

The descriptors are cached in ``~/.cache/neuroncli`` (keyed by the installed TensorFlow), so
later runs skip the parsing.  Because the pool and the file names are the ones TensorFlow uses, importing TensorFlow later
adds byte-identical files (a no-op) and ``tf.compat.v1.GraphDef is proto.GraphDef`` holds: the
same classes serve both worlds.  If TensorFlow is already imported we simply reuse its modules.

Without TensorFlow (``pip install neuroncli``, the light install) the descriptors come from
:data:`SHIPPED`, the same files of the supported TensorFlow release, written by
:mod:`neuroncli.proto.generate`.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import importlib.util
import os
import struct
import sys
import threading
from types import SimpleNamespace
from typing import Any

from google.protobuf import descriptor_pool, message_factory

__all__ = [
    "SavedModel", "MetaGraphDef", "SignatureDef", "TensorInfo", "GraphDef", "NodeDef",
    "AttrValue", "TensorProto", "TensorShapeProto", "FunctionDef", "FunctionDefLibrary",
    "StructuredValue", "DataType", "dtype_name", "dtype_size", "as_graph_def",
]

# The root files we need; their imports pull in the rest of the closure (19 files).
_ROOTS = (
    "tensorflow.core.protobuf.saved_model_pb2",
    "tensorflow.core.framework.graph_pb2",
)
_MESSAGES = {
    "SavedModel": "tensorflow.SavedModel",
    "MetaGraphDef": "tensorflow.MetaGraphDef",
    "SignatureDef": "tensorflow.SignatureDef",
    "TensorInfo": "tensorflow.TensorInfo",
    "GraphDef": "tensorflow.GraphDef",
    "NodeDef": "tensorflow.NodeDef",
    "AttrValue": "tensorflow.AttrValue",
    "TensorProto": "tensorflow.TensorProto",
    "TensorShapeProto": "tensorflow.TensorShapeProto",
    "FunctionDef": "tensorflow.FunctionDef",
    "FunctionDefLibrary": "tensorflow.FunctionDefLibrary",
    "AssetFileDef": "tensorflow.AssetFileDef",
    "StructuredValue": "tensorflow.StructuredValue",
}
_lock = threading.Lock()
_classes: SimpleNamespace | None = None


class ProtoUnavailable(RuntimeError):
    """TensorFlow's generated protobuf modules could not be found or read."""


#: The descriptor set shipped in the package for installs without TensorFlow (the light
#: install): TensorFlow's own descriptors of the supported release, written by
#: ``python -m neuroncli.proto.generate`` (same format as the cache below).
SHIPPED = os.path.join(os.path.dirname(__file__), "tf_descriptors.bin")


def _tensorflow_site() -> str | None:
    """The site directory holding ``tensorflow/``, None without TensorFlow."""
    try:
        spec = importlib.util.find_spec("tensorflow")  # locates, does not import
    except (ImportError, ValueError):  # a finder that refuses it, a broken install
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.dirname(list(spec.submodule_search_locations)[0])


def read_installed_descriptors(site: str) -> tuple[list[str], list[bytes]]:
    """The google modules and TensorFlow descriptors (dependencies first) of the TensorFlow
    installed in ``site``, read from its ``*_pb2.py`` files without executing them."""
    google: list[str] = []
    blobs: list[bytes] = []
    done: set[str] = set()
    for root in _ROOTS:
        _closure(site, root, done, google, blobs)
    return google, blobs


def _read_descriptor(path: str) -> tuple[bytes, list[str]]:
    """The serialized FileDescriptorProto of one ``*_pb2.py`` and the modules it imports."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    blob: bytes | None = None
    deps: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            deps.extend(f"{node.module}.{alias.name}" for alias in node.names
                        if alias.name.endswith("_pb2"))
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call = node.value
            if getattr(call.func, "attr", "") == "AddSerializedFile" and call.args:
                value = call.args[0]
                if isinstance(value, ast.Constant) and isinstance(value.value, bytes):
                    blob = value.value
    if blob is None:
        raise ProtoUnavailable(f"no serialized descriptor found in {path}")
    return blob, deps


def _closure(site: str, module: str, done: set[str], google: list[str],
             blobs: list[bytes]) -> None:
    """Collect the descriptors ``module`` needs, dependencies first."""
    if module in done:
        return
    done.add(module)
    if module.startswith("google.protobuf"):
        google.append(module)  # protobuf's own well-known types: cheap to import, no TF
        return
    path = os.path.join(site, *module.split(".")) + ".py"
    blob, deps = _read_descriptor(path)
    for dep in deps:
        _closure(site, dep, done, google, blobs)
    blobs.append(blob)


def _cache_path(site: str) -> str:
    """Cache file keyed by the installed TensorFlow (its __init__'s path, size and mtime)."""
    stat = os.stat(os.path.join(site, "tensorflow", "__init__.py"))
    key = hashlib.sha256(f"{site}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), f"tf-descriptors-{key}.bin")


def cache_dir() -> str:
    """This project's cache directory: ``$XDG_CACHE_HOME/neuroncli`` (``~/.cache/neuroncli``),
    shared by the descriptor cache here and the NeuronOp library (``neuroncli.tfop``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "neuroncli")


def read_descriptor_file(path: str) -> tuple[list[str], list[bytes]] | None:
    """Format: a JSON line with the google modules, then (u32 length, descriptor) records."""
    try:
        with open(path, "rb") as handle:
            google = json.loads(handle.readline())
            data = handle.read()
    except (OSError, ValueError):
        return None
    blobs, pos = [], 0
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        blobs.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    return (google, blobs) if pos == len(data) and blobs else None


def write_descriptor_file(path: str, google: list[str], blobs: list[bytes]) -> None:
    """Write the format :func:`read_descriptor_file` reads, atomically."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(json.dumps(google).encode() + b"\n")
        for blob in blobs:
            handle.write(struct.pack("<I", len(blob)) + blob)
    os.replace(tmp, path)


def _write_cache(path: str, google: list[str], blobs: list[bytes]) -> None:
    try:  # a cache: any failure just means the next run reads the wheel again
        write_descriptor_file(path, google, blobs)
    except OSError:
        pass


def _load_descriptors() -> None:
    """The installed TensorFlow's descriptors when it is installed (so its classes are ours
    once it loads), else the shipped set of the supported release."""
    site = _tensorflow_site()
    if site is None:
        shipped = read_descriptor_file(SHIPPED)
        if shipped is None:
            raise ProtoUnavailable(f"{SHIPPED} is missing or damaged: reinstall neuroncli")
        google, blobs = shipped
    else:
        cache = _cache_path(site)
        cached = read_descriptor_file(cache)
        if cached is None:
            google, blobs = read_installed_descriptors(site)
            _write_cache(cache, google, blobs)
        else:
            google, blobs = cached
    for module in google:
        importlib.import_module(module)
    pool = descriptor_pool.Default()
    for blob in blobs:
        pool.AddSerializedFile(blob)


def _build() -> SimpleNamespace:
    pool = descriptor_pool.Default()
    if "tensorflow" not in sys.modules:
        _load_descriptors()
    else:  # TensorFlow is loaded: its pb2 modules are already in the pool.
        for root in _ROOTS:
            importlib.import_module(root)
    ns = SimpleNamespace()
    for attr, full_name in _MESSAGES.items():
        setattr(ns, attr, message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name)))
    ns.DataType = pool.FindEnumTypeByName("tensorflow.DataType")
    return ns


def _get() -> SimpleNamespace:
    global _classes
    if _classes is None:
        with _lock:
            if _classes is None:
                _classes = _build()
    return _classes


def __getattr__(name: str):  # PEP 562: build the classes on first use only
    if name in _MESSAGES or name == "DataType":
        return getattr(_get(), name)
    raise AttributeError(name)


def dtype_name(dtype: int) -> str:
    """:func:`neuroncli.proto.dtypes.dtype_name` (its home; kept here for callers)."""
    from neuroncli.proto.dtypes import dtype_name as name
    return name(dtype)


def dtype_size(dtype: int) -> int:
    """:func:`neuroncli.proto.dtypes.dtype_size` (its home; kept here for callers)."""
    from neuroncli.proto.dtypes import dtype_size as size
    return size(dtype)


def as_graph_def(message: Any) -> Any:
    """``message`` (a TensorFlow ``GraphDef``) as this module's ``GraphDef``: the same object
    when TensorFlow's class is ours (the usual case, see the module doc), else a re-parse.
    Saves a serialize-and-parse of the weights (0.2 s per 100 MB)."""
    cls = _get().GraphDef
    if type(message) is cls:
        return message
    return cls.FromString(message.SerializeToString(deterministic=True))
