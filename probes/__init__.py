"""sfteval's probes: each registers itself in PROBES by name, so that suites can name it.

Importing this package registers every built-in probe; none of them imports torch (they never load models).
"""

from sfteval.probes import (
    forgetting,
    instruction_following,
    memorization,
    spurious_prefix,
    template_brittleness,
    termination,
    token_shift,
)
from sfteval.probes.base import (
    PROBES,
    MetricSpec,
    PlannedRequest,
    Probe,
    ProbeContext,
    ProbeParams,
    register_probe,
)

__all__ = [
    "PROBES",
    "MetricSpec",
    "PlannedRequest",
    "Probe",
    "ProbeContext",
    "ProbeParams",
    "forgetting",
    "instruction_following",
    "memorization",
    "register_probe",
    "spurious_prefix",
    "template_brittleness",
    "termination",
    "token_shift",
]
