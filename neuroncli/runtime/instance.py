"""Simulated instance types and the NeuronCores a process may use (no TensorFlow).

The instance table (cores, memory per core) lives in :mod:`neuroncli.format.instances`,
shared with the compiler.  The instance comes from ``--instance-type`` or
``NEURON_SIM_INSTANCE_TYPE`` (default ``inf2.xlarge``).

The visible cores follow the real runtime's variables: ``NEURON_RT_VISIBLE_CORES`` (``2``,
``0-3``, ``1,3``, ``0-1,3``) or ``NEURON_RT_NUM_CORES`` (the first N).  Everything else in the
runtime addresses cores by their index *within the visible set*, as ``start_nc`` does.
"""

from __future__ import annotations

import os
from typing import Mapping

from neuroncli.errors import UserError
from neuroncli.format.instances import INSTANCE_TYPES, InstanceSpec  # noqa: F401 (re-exported)

ENV_INSTANCE = "NEURON_SIM_INSTANCE_TYPE"
ENV_VISIBLE = "NEURON_RT_VISIBLE_CORES"
ENV_NUM_CORES = "NEURON_RT_NUM_CORES"
ENV_TIMEOUT = "NEURON_FRAMEWORK_INFER_TIMEOUT_SEC"
DEFAULT_INSTANCE = "inf2.xlarge"
DEFAULT_TIMEOUT_S = 10.0


def instance_spec(name: str | None = None,
                  environ: Mapping[str, str] | None = None) -> InstanceSpec:
    """The spec for ``name``, else ``NEURON_SIM_INSTANCE_TYPE``, else inf2.xlarge."""
    env = os.environ if environ is None else environ
    chosen = name or env.get(ENV_INSTANCE, "").strip() or DEFAULT_INSTANCE
    spec = INSTANCE_TYPES.get(chosen.lower())
    if spec is None:
        source = "--instance-type" if name else ENV_INSTANCE
        raise UserError(f"{source}: unknown instance type {chosen!r}; known: "
                        f"{', '.join(INSTANCE_TYPES)}")
    return spec


def parse_core_list(text: str, total: int, source: str = ENV_VISIBLE) -> tuple[int, ...]:
    """``"1,3"`` / ``"0-3"`` / ``"2"`` -> sorted physical core indices, checked against total."""
    cores: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise UserError(f"{source}={text!r}: empty entry: write indices like 0-3 or 1,3")
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise UserError(f"{source}={text!r}: {part!r} is not a core index or a range "
                            "like 0-3") from None
        if first < 0 or last < first:
            raise UserError(f"{source}={text!r}: range {part!r} must be ascending and "
                            "non-negative, e.g. 0-3")
        cores.extend(range(first, last + 1))
    if len(set(cores)) != len(cores):
        raise UserError(f"{source}={text!r}: a core is listed twice")
    bad = [c for c in cores if c >= total]
    if bad:
        raise UserError(f"{source}={text!r}: core {bad[0]} does not exist; the simulated "
                        f"instance has cores 0-{total - 1}: pick cores in that range or "
                        f"another --instance-type")
    return tuple(sorted(cores))


def parse_num_cores(text: str, total: int, source: str = ENV_NUM_CORES) -> tuple[int, ...]:
    try:
        count = int(text.strip())
    except ValueError:
        raise UserError(f"{source}={text!r}: not an integer: set it to a core count "
                        f"between 1 and {total}") from None
    if not 1 <= count <= total:
        raise UserError(f"{source}={text!r}: must be between 1 and {total} (the simulated "
                        "instance's core count)")
    return tuple(range(count))


def visible_cores(spec: InstanceSpec, visible: str | None = None, num_cores: int | None = None,
                  environ: Mapping[str, str] | None = None) -> tuple[int, ...]:
    """Physical indices of the cores this process may use.

    Explicit arguments win over the environment; ``NEURON_RT_VISIBLE_CORES`` wins over
    ``NEURON_RT_NUM_CORES`` as in the real runtime.  Default: every core of the instance.
    """
    env = os.environ if environ is None else environ
    if visible is not None:
        return parse_core_list(visible, spec.cores, "visible_cores")
    if num_cores is not None:
        return parse_num_cores(str(num_cores), spec.cores, "num_cores")
    text = env.get(ENV_VISIBLE, "").strip()
    if text:
        return parse_core_list(text, spec.cores)
    text = env.get(ENV_NUM_CORES, "").strip()
    if text:
        return parse_num_cores(text, spec.cores)
    return tuple(range(spec.cores))


def infer_timeout(value: float | None = None,
                  environ: Mapping[str, str] | None = None) -> float:
    """Seconds one program execution may take, waiting for its core included."""
    if value is not None:
        if value <= 0:
            raise UserError(f"timeout must be positive, got {value}")
        return float(value)
    env = os.environ if environ is None else environ
    text = env.get(ENV_TIMEOUT, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        raise UserError(f"{ENV_TIMEOUT}={text!r}: not a number of seconds") from None
    if seconds <= 0:
        raise UserError(f"{ENV_TIMEOUT}={text!r}: must be positive")
    return seconds


def host_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def format_bytes(count: int) -> str:
    """``1536`` -> ``1.5 KiB``; exact bytes below 1 KiB."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
