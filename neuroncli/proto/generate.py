"""Regenerate ``neuroncli/proto/tf_descriptors.bin``: the descriptor set of TensorFlow's
SavedModel/GraphDef messages that the light install (no TensorFlow) builds its classes from.

Run with the supported TensorFlow installed: ``python -m neuroncli.proto.generate [PATH]``.
The descriptors are read from the installed wheel's ``*_pb2.py`` files (never executed), as
:mod:`neuroncli.proto` does at run time; ``tests/test_light_install.py`` checks that the
shipped file equals what this writes from the installed TensorFlow.
"""

from __future__ import annotations

import importlib.metadata
import sys

from neuroncli import proto
from neuroncli.lazy_tf import SUPPORTED_TF


def installed_tf_version() -> str | None:
    """The version of the installed TensorFlow distribution (cpu or not), None if none."""
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def generate(path: str = proto.SHIPPED) -> str:
    """Write the descriptor set of the installed (supported) TensorFlow to ``path``."""
    site = proto._tensorflow_site()
    version = installed_tf_version()
    if site is None or version is None:
        raise SystemExit(f"error: TensorFlow {SUPPORTED_TF} must be installed to regenerate "
                         f"{path}")
    if not version.startswith(SUPPORTED_TF + "."):
        raise SystemExit(f"error: TensorFlow {version} is installed; the shipped descriptors "
                         f"are TensorFlow {SUPPORTED_TF}'s")
    google, blobs = proto.read_installed_descriptors(site)
    proto.write_descriptor_file(path, google, blobs)
    return path


if __name__ == "__main__":
    print(f"wrote {generate(*sys.argv[1:2])}")
