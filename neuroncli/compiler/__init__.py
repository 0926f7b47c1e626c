"""The compiler: freeze, shapes, partition, simulated backend, output and report.

Imports TensorFlow lazily (``neuroncli.lazy_tf``) and only where a graph is frozen, shaped or
lowered; importing this package is cheap.
"""
