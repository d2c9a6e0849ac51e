"""sfteval's probes: one folder each, found by scanning this package, so that suites can name them.

Every subpackage is imported once, and a probe registers itself in PROBES with `@register_probe` in its own module
(see docs/adding-a-probe.md): adding a probe edits nothing outside its folder. No probe imports torch (they never
load models).
"""

import importlib
import pkgutil

from sfteval.probes.base import (
    PROBES,
    GenerationParams,
    PlannedRequest,
    Probe,
    ProbeContext,
    ProbeParams,
    register_probe,
)


def _import_probe_packages() -> None:
    """Import every subpackage (a probe's folder, or the helpers they share); their modules register the probes."""
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")


_import_probe_packages()

__all__ = [
    "PROBES",
    "GenerationParams",
    "PlannedRequest",
    "Probe",
    "ProbeContext",
    "ProbeParams",
    "register_probe",
]
