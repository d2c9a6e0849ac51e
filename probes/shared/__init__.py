"""Helpers shared by several probes: data files, serving parameters, training text, token scores, sentences."""
