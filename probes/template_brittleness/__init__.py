"""template_brittleness: how much do scores move across serving templates and prompt formats?"""

from sfteval.probes.template_brittleness.probe import TemplateBrittlenessProbe

__all__ = ["TemplateBrittlenessProbe"]
