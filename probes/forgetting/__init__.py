"""forgetting: what base capability did SFT lose? (lm-eval tasks, held-out bits per byte, KL to base)"""

from sfteval.probes.forgetting.probe import ForgettingProbe

__all__ = ["ForgettingProbe"]
