"""Calibration of multiple-choice answers: option probabilities, ECE and Brier score, and the calibration probe."""

from .measures import choose, ece
from .probe import CalibrationParams, CalibrationProbe

__all__ = ["CalibrationParams", "CalibrationProbe", "choose", "ece"]
