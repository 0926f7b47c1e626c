"""Keras 3 applications (random weights) compile and verify: a slow guard (``make test-all``).

Each network is built with ``weights=None`` at 96x96 with 10 classes (small enough to build
in seconds; every one of them accepts 96 px), exported with ``model.export`` (Keras 3's
SavedModel), compiled with defaults and verified on the simulator against TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import neuroncli
from neuroncli.runtime.verify import verify

APPLICATIONS = ("EfficientNetB0", "EfficientNetV2B0", "DenseNet121", "InceptionV3", "Xception",
                "MobileNetV3Small", "NASNetMobile", "ConvNeXtTiny", "ResNet50V2")
SIZE = 96


def _export(name: str, target: Path) -> None:
    import keras
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(SIZE, SIZE, 3),
                                              classes=10)
    model.export(str(target), verbose=False)
    keras.backend.clear_session()


@pytest.mark.slow
@pytest.mark.parametrize("name", APPLICATIONS)
def test_application_compiles_and_verifies(name: str, tmp_path: Path) -> None:
    original, compiled = tmp_path / name, tmp_path / f"{name}_neuron"
    _export(name, original)
    counts = neuroncli.saved_model.compile(original, compiled)
    assert counts["neuron_ops"] >= 1
    report = verify(original, compiled, runs=2)
    assert report.passed, [o for o in report.outputs if not o.passed]
