"""``python -m neuroncli.tfop``: build (if needed) and load the NeuronOp op library.

``make install`` runs it so that the first ``tf.saved_model.load`` of a compiled model does
not wait for the compiler.  Prints where the library is; exit 1 with one line if it cannot be
built.
"""

from __future__ import annotations

import sys

from neuroncli.tfop import OpLibraryUnavailable, load_library


def main() -> int:
    try:
        library = load_library()
    except OpLibraryUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    how = f"built in {library.build.seconds:.1f} s" if library.build.built else "cached"
    print(f"NeuronOp library: {library.path} ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
