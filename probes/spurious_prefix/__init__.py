"""spurious_prefix: did SFT teach a fixed opening that the model now puts in front of everything?"""

from sfteval.probes.spurious_prefix.probe import SpuriousPrefixProbe

__all__ = ["SpuriousPrefixProbe"]
