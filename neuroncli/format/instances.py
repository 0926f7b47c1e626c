"""Instance types: NeuronCores and device memory per core (no TensorFlow, no runtime).

Shared by the compiler (``--extract-weights INSTANCE`` sizes ``max_num_duplicates`` by the
instance's memory) and the simulated runtime (which cores exist and what they hold).  Facts
from AWS's instance documentation (docs/format.md, "Instances"): core counts per instance
type; a NeuronCore-v2 (inf2, trn1) has 16 GiB of device memory; an Inferentia1 chip has 4
cores sharing 8 GiB, modelled as 2 GiB per core.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1 << 30


@dataclass(frozen=True)
class InstanceSpec:
    """One instance type.

    name: the EC2 instance type, e.g. ``inf2.xlarge``.
    cores: NeuronCores on the instance.
    core_memory_bytes: device memory one NeuronCore can hold.
    generation: ``"v1"`` (Inferentia1) or ``"v2"`` (Inferentia2 / Trainium1).
    """

    name: str
    cores: int
    core_memory_bytes: int
    generation: str


def _spec(name: str, cores: int) -> InstanceSpec:
    if name.startswith("inf1."):
        return InstanceSpec(name, cores, 8 * GIB // 4, "v1")
    return InstanceSpec(name, cores, 16 * GIB, "v2")


INSTANCE_TYPES: dict[str, InstanceSpec] = {
    spec.name: spec for spec in (
        _spec("inf1.xlarge", 4), _spec("inf1.2xlarge", 4), _spec("inf1.6xlarge", 16),
        _spec("inf1.24xlarge", 64), _spec("inf2.xlarge", 2), _spec("inf2.8xlarge", 2),
        _spec("inf2.24xlarge", 12), _spec("inf2.48xlarge", 24), _spec("trn1.2xlarge", 2),
        _spec("trn1.32xlarge", 32),
    )
}
