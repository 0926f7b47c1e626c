"""The on-disk formats shared by the compiler, the rewrites and the runtime.

``neuron_op`` holds the ``NeuronOp`` attribute schema (AWS's, see docs/format.md) and
``executable`` the container of this project's simulated programs.  They live apart from the
compiler so that the runtime and the protobuf-only rewrites can read what the compiler wrote
without importing its internals (or TensorFlow).
"""
