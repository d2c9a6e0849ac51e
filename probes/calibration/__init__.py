"""calibration: is the model confidently wrong? (option probabilities, ECE, Brier, overconfident wrong answers)"""

from sfteval.probes.calibration.probe import CalibrationProbe

__all__ = ["CalibrationProbe"]
