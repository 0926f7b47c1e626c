"""Classify and Regress: TF Serving's ``tf.Example`` APIs over a classification or regression
signature.

The request's ``Input`` (an ``example_list``, or an ``example_list_with_context`` whose context
features are merged into every example, as TF Serving does) becomes the signature's one
string input ``inputs`` of serialized examples; the outputs are read back as TF Serving's
result messages: ``classes`` (strings) and/or ``scores`` (floats) per example for Classify,
``outputs`` (one float per example) for Regress.  The signature's ``method_name`` must say it
is one, as TF Serving requires.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from neuroncli.serving.status import INVALID_ARGUMENT, ServingError

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
INPUTS = "inputs"
CLASSES, SCORES, OUTPUTS = "classes", "scores", "outputs"


def check_method(signature_def: Any, key: str, method: str) -> None:
    if signature_def.method_name != method:
        kind = "classification" if method == CLASSIFY_METHOD else "regression"
        raise ServingError(INVALID_ARGUMENT, f"Expected {kind} signature method_name to be "
                           f"{method}. Was: {signature_def.method_name} (signature {key!r})")
    if list(signature_def.inputs) != [INPUTS]:
        raise ServingError(INVALID_ARGUMENT, f"signature {key!r} must have exactly one input "
                           f"named {INPUTS!r}, got {sorted(signature_def.inputs)}")


def serialized_examples(request_input: Any) -> np.ndarray:
    """The request's examples as a 1-D object array of serialized ``tf.Example`` bytes."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        context = listed.context.SerializeToString()
        # Serialized messages concatenated parse as one merged message, later map entries
        # winning: the context's features join every example, and an example's own feature
        # of the same name wins, which is TF Serving's merge order.
        examples = [context + e.SerializeToString() for e in listed.examples]
    else:
        examples = []
    if not examples:
        raise ServingError(INVALID_ARGUMENT, "Input is empty: send at least one example")
    out = np.empty(len(examples), dtype=object)
    out[:] = examples
    return out


def fill_classification(result: Any, outputs: Mapping[str, np.ndarray], count: int) -> None:
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    if classes is None and scores is None:
        raise ServingError(INVALID_ARGUMENT, f"the classification signature has neither "
                           f"{CLASSES!r} nor {SCORES!r} outputs")
    for name, array in ((CLASSES, classes), (SCORES, scores)):
        if array is not None and (array.ndim != 2 or array.shape[0] != count):
            raise ServingError(INVALID_ARGUMENT, f"output {name!r} has shape "
                               f"{list(array.shape)}: expected [{count}, classes]")
    width = (classes if classes is not None else scores).shape[1]
    for row in range(count):
        entry = result.classifications.add()
        for column in range(width):
            item = entry.classes.add()
            if classes is not None:
                label = classes[row, column]
                item.label = label.decode() if isinstance(label, bytes) else str(label)
            if scores is not None:
                item.score = float(scores[row, column])


def fill_regression(result: Any, outputs: Mapping[str, np.ndarray], count: int) -> None:
    values = outputs.get(OUTPUTS)
    if values is None:
        raise ServingError(INVALID_ARGUMENT, f"the regression signature has no {OUTPUTS!r} "
                           "output")
    flat = np.asarray(values).reshape(count, -1) if values.size == count else None
    if flat is None:
        raise ServingError(INVALID_ARGUMENT, f"output {OUTPUTS!r} has shape "
                           f"{list(values.shape)}: expected one value per example")
    for row in range(count):
        result.regressions.add().value = float(flat[row, 0])
