"""The gRPC front end: TF Serving's ``PredictionService`` and ``ModelService``.

Services and messages are the ``tensorflow-serving-api`` wheel's own (``tensorflow_serving.apis``),
so clients written for TF Serving, and for AWS's ``tensorflow_model_server_neuron``, call this
server unchanged.  Each method translates the request into a
:class:`~neuroncli.serving.service.ModelRef` and arrays, calls the service, and turns a
:class:`~neuroncli.serving.status.ServingError` into the same gRPC status code TF Serving
returns.  This is the only module (with :mod:`~neuroncli.serving.server`) that imports the
stubs, and it imports TensorFlow quietly first (the stubs import TensorFlow's protos).
"""

from __future__ import annotations

from typing import Any, Callable

from neuroncli.lazy_tf import import_tensorflow
from neuroncli.serving.classify import (
    CLASSIFY_METHOD, INPUTS, REGRESS_METHOD, fill_classification, fill_regression,
    serialized_examples,
)
from neuroncli.serving.service import InferenceService, ModelRef
from neuroncli.serving.status import INVALID_ARGUMENT, ServingError, from_exception
from neuroncli.serving.tensors import from_proto, to_proto

import_tensorflow()  # before the stubs: they import tensorflow.core protos

import grpc  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2, get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
    predict_pb2, prediction_service_pb2_grpc, regression_pb2,
)

SIGNATURE_DEF_FIELD = "signature_def"


def model_ref(spec: Any) -> ModelRef:
    """A request's ``ModelSpec`` as a :class:`ModelRef`."""
    choice = spec.WhichOneof("version_choice")
    version = int(spec.version.value) if choice == "version" else None
    label = spec.version_label if choice == "version_label" else None
    return ModelRef(spec.name, version, label, spec.signature_name)


def _abort(context: Any, error: ServingError) -> None:
    context.abort(grpc.StatusCode[error.code], error.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService``: Predict, Classify, Regress and
    GetModelMetadata (MultiInference is not offered)."""

    def __init__(self, service: InferenceService) -> None:
        self.service = service

    def _run(self, context: Any, name: str, api: str, body: Callable[[], Any]) -> Any:
        try:
            with self.service.request(name, api, "GRPC"):
                return body()
        except Exception as exc:  # noqa: BLE001 - every failure leaves as a status code
            _abort(context, from_exception(exc))

    def Predict(self, request: Any, context: Any) -> Any:
        ref = model_ref(request.model_spec)

        def convert(specs: Any) -> dict[str, Any]:
            return {key: from_proto(key, proto, specs.get(key))
                    for key, proto in request.inputs.items()}

        def body() -> Any:
            result = self.service.predict(ref, convert, tuple(request.output_filter))
            response = predict_pb2.PredictResponse()
            _fill_spec(response.model_spec, ref.name, result.version, result.signature_name)
            for key, array in result.outputs.items():
                to_proto(array, result.specs[key].dtype, response.outputs[key])
            return response
        return self._run(context, ref.name, "predict", body)

    def Classify(self, request: Any, context: Any) -> Any:
        return self._examples(request, context, "classify", CLASSIFY_METHOD,
                              classification_pb2.ClassificationResponse(), fill_classification)

    def Regress(self, request: Any, context: Any) -> Any:
        return self._examples(request, context, "regress", REGRESS_METHOD,
                              regression_pb2.RegressionResponse(), fill_regression)

    def _examples(self, request: Any, context: Any, api: str, method: str, response: Any,
                  fill: Callable[[Any, Any, int], None]) -> Any:
        ref = model_ref(request.model_spec)

        def body() -> Any:
            examples = serialized_examples(request.input)
            result = self.service.predict(ref, lambda specs: {INPUTS: examples},
                                          method=method)
            _fill_spec(response.model_spec, ref.name, result.version, result.signature_name)
            fill(response.result, result.outputs, len(examples))
            return response
        return self._run(context, ref.name, api, body)

    def GetModelMetadata(self, request: Any, context: Any) -> Any:
        ref = model_ref(request.model_spec)
        fields = list(request.metadata_field)
        try:
            if not fields:
                raise ServingError(INVALID_ARGUMENT, "GetModelMetadataRequest must specify "
                                   "at least one metadata_field")
            unsupported = [f for f in fields if f != SIGNATURE_DEF_FIELD]
            if unsupported:
                raise ServingError(INVALID_ARGUMENT, f"Metadata field {unsupported[0]} is "
                                   f"not supported (ask for {SIGNATURE_DEF_FIELD!r})")
            version, signature_defs = self.service.metadata(ref)
        except Exception as exc:  # noqa: BLE001
            _abort(context, from_exception(exc))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, ref.name, version, "")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: GetModelStatus (HandleReloadConfigRequest is
    not offered: the configuration comes from the command line)."""

    def __init__(self, service: InferenceService) -> None:
        self.service = service

    def GetModelStatus(self, request: Any, context: Any) -> Any:
        try:
            found = self.service.status(model_ref(request.model_spec))
        except Exception as exc:  # noqa: BLE001
            _abort(context, from_exception(exc))
        response = get_model_status_pb2.GetModelStatusResponse()
        state = get_model_status_pb2.ModelVersionStatus.State
        for status in found:
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = state.Value(status.state)
            entry.status.error_code = grpc.StatusCode[status.error_code].value[0]
            entry.status.error_message = status.error_message
        return response


def _fill_spec(spec: Any, name: str, version: int, signature_name: str) -> None:
    spec.name = name
    spec.version.value = version
    if signature_name:
        spec.signature_name = signature_name


def add_services(server: Any, service: InferenceService) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(service), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(service), server)
