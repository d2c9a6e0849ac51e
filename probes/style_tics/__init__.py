"""style_tics: did SFT on distilled data teach the model a stronger model's stylistic tics?"""

from sfteval.probes.style_tics.probe import StyleTicsProbe

__all__ = ["StyleTicsProbe"]
