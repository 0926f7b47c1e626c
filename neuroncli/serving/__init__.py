"""``neuron-serve``: TensorFlow Serving's gRPC and REST APIs over the simulated NeuronCores.

A look-alike of AWS's ``tensorflow_model_server_neuron`` (TF Serving with NeuronOp
registered): the same flags, the same version directories, the same protos and status codes,
so clients, deployment scripts and health checks written for it run unchanged.  Models load
through the public runtime API (:func:`neuroncli.load`); the server adds no code to the
runtime.

Modules: ``config`` (flags' files), ``versions`` (version directories, half-copied
detection), ``models`` (loaded versions, policies, status), ``batching`` (request merging),
``service`` (one request, protocol-free), ``tensors`` / ``restjson`` (wire formats),
``grpc_api`` and ``rest`` (the front ends), ``metrics`` (Prometheus), ``status`` (codes),
``server`` (start-up and shutdown).  Only ``grpc_api`` imports the ``tensorflow_serving``
stubs.
"""

from __future__ import annotations

from neuroncli.serving.server import ModelServer, ServerOptions, serve

__all__ = ["ModelServer", "ServerOptions", "serve"]
