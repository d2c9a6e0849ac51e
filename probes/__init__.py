"""sfteval's probes: each registers itself in PROBES by name, so that suites can name it.

Importing this package registers every built-in probe; none of them imports torch (they never load models).
"""

from sfteval.probes import (
    calibration,
    forgetting,
    instruction_following,
    memorization,
    refusal,
    spurious_prefix,
    style_tics,
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
    "calibration",
    "forgetting",
    "instruction_following",
    "memorization",
    "refusal",
    "register_probe",
    "spurious_prefix",
    "style_tics",
    "template_brittleness",
    "termination",
    "token_shift",
]
