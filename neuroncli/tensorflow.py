"""``import neuroncli.tensorflow``: the AWS-like one-line import (``import tensorflow.neuron``).

Imports TensorFlow and registers the ``NeuronOp`` op and its kernel, so that
``tf.saved_model.load``, ``tf.compat.v1.saved_model.load`` and ``keras.layers.TFSMLayer`` run
compiled models.  Raises :class:`neuroncli.tfop.OpLibraryUnavailable` (an ImportError would
hide the reason) when the library cannot be built or loaded.  ``import neuroncli`` alone does
the same as soon as TensorFlow is imported, without this line (see :mod:`neuroncli.tfop`).
"""

from __future__ import annotations

from neuroncli.tfop import LoadedLibrary, load_library

library: LoadedLibrary = load_library()

__all__ = ["library"]
