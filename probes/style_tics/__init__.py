"""Stylistic tics of distilled training data: the tic lexicon, learned-phrase mining and the style_tics probe."""

from .probe import StyleTicsParams, StyleTicsProbe

__all__ = ["StyleTicsParams", "StyleTicsProbe"]
