"""Core counts and placement values: one home for their limits and the one rule checking them.

Every entry point that takes a core index or count checks it here, so ``neuron-place``,
``tf-neuron-auto-multicore``, the placement calls (``set_neuron_cores``,
``neuron_cores_context``, ``auto_multicore``), ``load(start_nc=, nc_count=)`` and the placement
attributes a model carries all accept and refuse the same values with the same words:

``start_nc``
    ``-1`` (:data:`LEAST_USED`: the least-used visible cores at load) or a core index from 0
    to ``MAX_CORES - 1``, relative to the visible cores.
``nc_count``
    ``-1`` (:data:`ONE_CORE`: exactly one core, or one copy of a pipeline program), or a core
    count from 1 to :data:`MAX_CORES`; ``0`` (:data:`ALL_VISIBLE`: every visible core) only
    where it is written for the user (``--multicore``, ``set_multicore``) or read back from
    the attribute.
``num_cores``
    ``_automatic_multicore``: replicas on cores 0..N-1, from 1 to :data:`MAX_CORES`.

Booleans are refused everywhere: ``True`` is an ``int`` to Python but never a core.  Whether
a range fits the visible cores is only known at load (``neuroncli.runtime.placement``).
No imports beyond the standard library: the command line uses this for ``--help``.
"""

from __future__ import annotations

from typing import Any

from neuroncli.errors import UserError

#: AWS's limit on the cores one model uses: replicas (``_automatic_multicore``,
#: ``max_num_duplicates``), placement counts, pipeline cores.  The largest instance
#: (inf1.24xlarge) has 64 NeuronCores.
MAX_CORES = 64
#: ``start_nc``: the least-used visible core(s), chosen at load.
LEAST_USED = -1
#: ``nc_count``: exactly one core.
ONE_CORE = -1
#: ``nc_count``: every visible core (``--multicore``, ``set_multicore``).
ALL_VISIBLE = 0
# A model with one NeuronOp and no placement is copied onto up to this many visible cores
# (AWS's runtime default), capped by its max_num_duplicates.
DEFAULT_MAX_COPIES = 4


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_start_nc(value: Any) -> int:
    """``value`` as a start core, or :class:`UserError` naming the valid values."""
    if not _is_int(value) or not LEAST_USED <= value < MAX_CORES:
        raise UserError(f"start_nc must be -1 (least-used core) or a core index from 0 to "
                        f"{MAX_CORES - 1}, got {value!r}")
    return value


def check_nc_count(value: Any, *, all_visible: bool = False) -> int:
    """``value`` as a core count; ``all_visible`` also accepts :data:`ALL_VISIBLE` (0)."""
    if _is_int(value) and (value == ONE_CORE or 1 <= value <= MAX_CORES
                           or (all_visible and value == ALL_VISIBLE)):
        return value
    every = ", or 0 (every visible core)" if all_visible else ""
    raise UserError(f"nc_count must be -1 (exactly one core) or from 1 to {MAX_CORES}{every}, "
                    f"got {value!r}")


def check_num_cores(value: Any, name: str = "num_cores") -> int:
    """``value`` as a replica count (``_automatic_multicore``); ``name`` is the caller's
    spelling (``--num_cores`` on the command line)."""
    if not _is_int(value) or not 1 <= value <= MAX_CORES:
        raise UserError(f"{name} must be an integer from 1 to {MAX_CORES}, got {value!r}: "
                        "pass the number of NeuronCores to replicate over")
    return value
