"""TF Serving's REST JSON: predict requests (row and columnar), responses, metadata, status.

Row format (``"instances": [...]``): one entry per row; with several inputs each entry is an
object keyed by input name.  Columnar format (``"inputs": ...``): the whole tensor, or an
object of tensors.  The response mirrors the request: ``"predictions"`` (rows) or
``"outputs"`` (columns), an object only when there are several outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from neuroncli.runtime import TensorSpec
from neuroncli.serving.service import InferenceService, ModelRef, PredictResult
from neuroncli.serving.status import INVALID_ARGUMENT, ServingError
from neuroncli.serving.tensors import from_json, rows, to_json


@dataclass(frozen=True)
class PredictBody:
    """A parsed ``:predict`` body.

    signature_name: ``""`` for ``serving_default``.  row_format: ``instances`` was used.
    converter: signature input specs -> arrays.
    """

    signature_name: str
    row_format: bool
    converter: Callable[[Mapping[str, TensorSpec]], dict[str, np.ndarray]]


def _bad(message: str) -> ServingError:
    return ServingError(INVALID_ARGUMENT, message)


def parse_predict(body: bytes) -> PredictBody:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"JSON Parse error: {exc}: send one JSON object") from None
    if not isinstance(document, dict):
        raise _bad("the request body must be a JSON object with \"instances\" or \"inputs\"")
    signature = document.get("signature_name", "")
    if not isinstance(signature, str):
        raise _bad("\"signature_name\" must be a string")
    has_rows, has_columns = "instances" in document, "inputs" in document
    if has_rows == has_columns:
        raise _bad("the request needs exactly one of \"instances\" (row format) or "
                   "\"inputs\" (columnar format)")
    unknown = sorted(set(document) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise _bad(f"unknown key(s) {unknown} in the request: use \"signature_name\", "
                   "\"instances\" or \"inputs\"")
    if has_rows:
        instances = document["instances"]
        return PredictBody(signature, True, lambda specs: _from_rows(instances, specs))
    inputs = document["inputs"]
    return PredictBody(signature, False, lambda specs: _from_columns(inputs, specs))


def _named(value: Any) -> bool:
    return isinstance(value, dict) and set(value) != {"b64"}


def _from_columns(inputs: Any, specs: Mapping[str, TensorSpec]) -> dict[str, np.ndarray]:
    if _named(inputs):
        named = inputs
    elif len(specs) == 1:
        named = {next(iter(specs)): inputs}
    else:
        raise _bad(f"the signature has {len(specs)} inputs ({', '.join(specs)}): pass "
                   "\"inputs\" as an object keyed by input name")
    return _convert(named, specs)


def _from_rows(instances: Any, specs: Mapping[str, TensorSpec]) -> dict[str, np.ndarray]:
    if not isinstance(instances, list) or not instances:
        raise _bad("\"instances\" must be a non-empty list with one entry per row")
    if all(_named(row) for row in instances):
        keys = set(instances[0])
        if any(set(row) != keys for row in instances):
            raise _bad("every entry of \"instances\" must name the same inputs")
        columns = {k: [row[k] for row in instances] for k in keys}
    elif len(specs) == 1 and not any(_named(row) for row in instances):
        columns = {next(iter(specs)): instances}
    else:
        raise _bad(f"the signature has {len(specs)} inputs ({', '.join(specs)}): make every "
                   "entry of \"instances\" an object keyed by input name")
    return _convert(columns, specs)


def _convert(named: Mapping[str, Any], specs: Mapping[str, TensorSpec]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in named.items():
        spec = specs.get(key)
        # An unknown key goes through as is: the model's own check names it with the others.
        out[key] = from_json(key, value, spec) if spec is not None else np.asarray(0)
    return out


def predict_response(result: PredictResult, row_format: bool) -> bytes:
    if row_format:
        return _dumps({"predictions": rows(result.outputs)})
    columns = {k: to_json(k, v) for k, v in result.outputs.items()}
    return _dumps({"outputs": next(iter(columns.values())) if len(columns) == 1
                   else columns})


def metadata(service: InferenceService, ref: ModelRef) -> bytes:
    from google.protobuf.json_format import MessageToDict
    version, signature_defs = service.metadata(ref)
    defs = {key: MessageToDict(value, preserving_proto_field_name=True)
            for key, value in sorted(signature_defs.items())}
    return _dumps({"model_spec": {"name": ref.name, "signature_name": "",
                                  "version": str(version)},
                   "metadata": {"signature_def": {"signature_def": defs}}})


def status(service: InferenceService, ref: ModelRef) -> bytes:
    found = service.status(ref)
    return _dumps({"model_version_status": [
        {"version": str(s.version), "state": s.state,
         "status": {"error_code": s.error_code, "error_message": s.error_message}}
        for s in found]})


def _dumps(document: Any) -> bytes:
    return json.dumps(document, indent=None, separators=(",", ":")).encode()
