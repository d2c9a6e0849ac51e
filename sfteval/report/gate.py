"""Gate policies: rules on report metrics that CI can enforce before a checkpoint goes on to DPO/RLHF.

A policy (YAML, see suites/gates/default.yaml) lists rules; each names a probe and a metric and one or more bounds:
`min` / `max` on the value, `max_drop` / `min_gain` on its change vs base measured in the metric's good direction
(a drop of a lower-is-better metric is a rise), and `not_worse_than_base` (fails when the report's paired
comparison with base is Holm-significant and worse). Values are in report units: binary metrics are fractions, so
0.05 is 5 points. A rule applies to every serving template with a value unless it names one, and to every non-base
variant; a rule whose probe, metric, cell or base value is absent from the report is `skipped`, not failed.

`variants` says which variants must pass the fail-rules: `recommended` (default; the gate passes when the
best-epoch rule finds a checkpoint among those passing every fail-rule, and the recommendation becomes that
checkpoint; reports without a metric to rank by are gated like `all`), `all` (every non-base variant), or a list
of names.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sfteval.errors import UserError
from sfteval.report.formatting import format_magnitude, format_p, format_value
from sfteval.report.recommend import recommend
from sfteval.report.schema import GateCheck, GateCheckKind, GateResult, MetricInfo, ProbeResult, Report
from sfteval.suite import located_error, node_at, node_line, reject_duplicate_keys, suite_directories

DEFAULT_POLICY = "default"
BASE = "base"
CHECK_KINDS: tuple[GateCheckKind, ...] = ("min", "max", "max_drop", "min_gain", "not_worse_than_base")
# Values come from finite item sets (e.g. 0.75 − 0.8 = −0.05000000000000004): a bound is met within this.
_TOLERANCE = 1e-9


class GateRule(BaseModel):
    """One rule: a probe's metric and the bounds it must meet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Unique rule name (JUnit test case name).")
    description: str = Field(default="", description="Why the rule exists, in a sentence.")
    probe: str = Field(description="Registered probe name.")
    metric: str = Field(description="A metric the probe declares.")
    template: str | None = Field(default=None, description="Only this serving template (default: every one).")
    severity: Literal["fail", "warn"] = Field(
        default="fail", description="fail blocks the gate; warn reports."
    )
    min: float | None = Field(default=None, description="The value must be at least this.")
    max: float | None = Field(default=None, description="The value must be at most this.")
    max_drop: float | None = Field(
        default=None, ge=0, description="Worsening vs base (in the metric's good direction) at most this."
    )
    min_gain: float | None = Field(
        default=None, description="Improvement vs base (in the metric's good direction) at least this."
    )
    not_worse_than_base: bool = Field(
        default=False, description="Fail when the paired comparison with base is significantly worse."
    )

    @model_validator(mode="after")
    def _has_a_check(self) -> GateRule:
        if not self.checks():
            raise ValueError("a rule needs at least one of min, max, max_drop, min_gain, not_worse_than_base")
        return self

    def checks(self) -> list[tuple[GateCheckKind, float | None]]:
        """The rule's bounds as (kind, bound) in a fixed order; not_worse_than_base has no bound."""
        bounds: dict[GateCheckKind, float | None] = {
            "min": self.min,
            "max": self.max,
            "max_drop": self.max_drop,
            "min_gain": self.min_gain,
        }
        found = [(kind, bound) for kind, bound in bounds.items() if bound is not None]
        return found + ([("not_worse_than_base", None)] if self.not_worse_than_base else [])


class GatePolicy(BaseModel):
    """A gate policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = Field(default=1, description="Policy format version.")
    description: str = Field(default="", description="What the policy protects.")
    variants: Literal["recommended", "all"] | list[str] = Field(
        default="recommended", description="Which variants must pass: recommended, all, or a list of names."
    )
    rules: list[GateRule] = Field(min_length=1, description="The rules, checked in order.")


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy with its file and each rule's line (for errors found against a report)."""

    path: Path
    policy: GatePolicy
    rule_lines: tuple[int, ...]


def resolve_policy(source: str | Path) -> Path:
    """A policy file path, or the name of a shipped policy (suites/gates/NAME.yaml)."""
    path = Path(source)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        raise UserError(f"{path}: gate policy file not found")
    for directory in suite_directories():
        candidate = directory / "gates" / f"{source}.yaml"
        if candidate.is_file():
            return candidate
    raise UserError(f"unknown gate policy {str(source)!r} (not a file, not a shipped policy)")


def load_policy(source: str | Path) -> LoadedPolicy:
    """Read and validate a policy; every error names the file and line (exit 2)."""
    path = resolve_policy(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read gate policy ({error})") from None
    return parse_policy(text, path)


def parse_policy(text: str, path: Path) -> LoadedPolicy:
    """Validate policy YAML: schema, unique rule names, registered probes and declared metrics."""
    root, data = _compose(text, path)
    if not isinstance(data, dict):
        raise UserError(f"{path}:{node_line(root)}: a gate policy must be a YAML mapping with a `rules` list")
    try:
        policy = GatePolicy.model_validate(data)
    except ValidationError as error:
        raise located_error(error, root, path, ()) from None
    lines = tuple(node_line(node_at(root, ("rules", index))) for index in range(len(policy.rules)))
    seen: set[str] = set()
    for index, rule in enumerate(policy.rules):
        where = f"{path}:{lines[index]}: rules.{index}"
        if rule.name in seen:
            raise UserError(f"{where}.name: duplicate rule name {rule.name!r}")
        seen.add(rule.name)
        _check_names(rule, where)
    return LoadedPolicy(path=path, policy=policy, rule_lines=lines)


def _compose(text: str, path: Path) -> tuple[yaml.Node, Any]:
    """The YAML node tree (with line marks) and its data; syntax errors and duplicate keys name the line."""
    try:
        # Built inside the try: the loader's reader rejects control characters as soon as it is made.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:
        number = text[: error.position].count("\n") + 1
        raise UserError(f"{path}:{number}: invalid YAML ({error.reason}: #x{error.character:04x})") from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise UserError(f"{path}: the gate policy is empty")
        reject_duplicate_keys(root, path)
        return root, loader.construct_document(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{line}: invalid YAML ({error.problem or error.context})") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: invalid YAML ({error})") from None
    finally:
        loader.dispose()


def _check_names(rule: GateRule, where: str) -> None:
    """The probe must be registered and the metric declared by it (typos would otherwise skip silently)."""
    from sfteval.probes import PROBES

    try:
        probe_class = PROBES.get(rule.probe)
    except UserError as error:
        raise UserError(f"{where}.probe: {error}") from None
    declared = [spec.name for spec in probe_class.metrics]
    if rule.metric not in declared:
        close = difflib.get_close_matches(rule.metric, declared, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"its metrics: {', '.join(declared)}"
        raise UserError(f"{where}.metric: probe {rule.probe} has no metric {rule.metric!r}", hint=hint)


def apply_gate(report: Report, loaded: LoadedPolicy) -> Report:
    """The report with gate verdicts and the recommendation recomputed among variants passing the fail-rules."""
    result = evaluate_gate(report, loaded)
    recommendation = recommend(report.run, report.probes, excluded=result.failed_variants)
    return report.model_copy(update={"gate": result, "recommendation": recommendation})


def evaluate_gate(report: Report, loaded: LoadedPolicy) -> GateResult:
    """Check every rule on every candidate variant and decide the verdict for the policy's scope."""
    names = [variant.name for variant in report.run.variants]
    candidates = [name for name in names if name != BASE] or names
    checks = [
        check
        for index, rule in enumerate(loaded.policy.rules)
        for check in _rule_checks(report, rule, candidates, f"{loaded.path}:{loaded.rule_lines[index]}")
    ]
    failed: dict[str, str] = {}
    for check in checks:
        if check.verdict == "fail" and check.variant is not None:
            failed.setdefault(check.variant, f"gate rule {check.rule}: {check.message}")
    scope = loaded.policy.variants
    gated = _gated_variants(report, scope, candidates, failed, loaded.path)
    passed = bool(gated) and not any(name in failed for name in gated)
    return GateResult(
        policy=str(loaded.path),
        scope=scope if isinstance(scope, str) else ",".join(scope),
        gated_variants=tuple(gated),
        failed_variants=failed,
        checks=tuple(checks),
        passed=passed,
    )


def _gated_variants(
    report: Report, scope: str | list[str], candidates: list[str], failed: dict[str, str], path: Path
) -> list[str]:
    """The variants whose fail-rules decide the verdict (empty when `recommended` finds no passing variant)."""
    if isinstance(scope, list):
        unknown = [name for name in scope if name not in candidates]
        if unknown:
            raise UserError(
                f"{path}: variants: {unknown[0]!r} is not a variant of this report ({', '.join(candidates)})"
            )
        return list(scope)
    if scope == "recommended":
        recommendation = recommend(report.run, report.probes, excluded=failed)
        if recommendation is not None:
            return [] if recommendation.variant is None else [recommendation.variant]
    return candidates


def _rule_checks(report: Report, rule: GateRule, candidates: Sequence[str], where: str) -> list[GateCheck]:
    """The rule's checks for every candidate and template, or skipped rows naming what is missing."""
    probe = report.probe(rule.probe)
    info = None if probe is None else probe.metric_info(rule.metric)
    if probe is None or info is None:
        missing = f"probe {rule.probe}" if probe is None else f"metric {rule.metric} of {rule.probe}"
        return [
            _skipped(rule, kind, None, None, f"{missing} is not in this report") for kind, _ in rule.checks()
        ]
    if info.higher_is_better is None and any(kind in ("max_drop", "min_gain") for kind, _ in rule.checks()):
        raise UserError(
            f"{where}: rule {rule.name}: {rule.metric} has no good direction, so max_drop/min_gain do not apply"
        )
    checks: list[GateCheck] = []
    for variant in candidates:
        templates = [rule.template] if rule.template else _templates_with_values(probe, variant, rule.metric)
        if not templates:
            why = f"{variant} has no {rule.metric} value"
            checks.extend(_skipped(rule, kind, variant, None, why) for kind, _ in rule.checks())
        for template in templates:
            checks.extend(
                _check(report, probe, info, rule, kind, bound, variant, template)
                for kind, bound in rule.checks()
            )
    return checks


def _check(
    report: Report,
    probe: ProbeResult,
    info: MetricInfo,
    rule: GateRule,
    kind: GateCheckKind,
    bound: float | None,
    variant: str,
    template: str,
) -> GateCheck:
    """One bound on one (variant, template) cell."""
    value = _value(probe, variant, template, rule.metric)
    if value is None:
        return _skipped(
            rule, kind, variant, template, f"{variant} has no {rule.metric} value under {template}"
        )
    if kind == "not_worse_than_base":
        return _not_worse(report, rule, info, variant, template)
    if kind in ("min", "max"):
        assert bound is not None
        ok = value >= bound - _TOLERANCE if kind == "min" else value <= bound + _TOLERANCE
        sign = "≥" if kind == "min" else "≤"
        text = f"{rule.metric} {format_value(value, info.binary)} (must be {sign} {format_value(bound, info.binary)})"
        return _verdict(rule, kind, variant, template, value, bound, ok, text, info.binary)
    gain = _gain_vs_base(report, probe, info, variant, template)
    if gain is None:
        return _skipped(rule, kind, variant, template, f"no base value of {rule.metric} under {template}")
    assert bound is not None
    measured = -gain if kind == "max_drop" else gain
    ok = measured <= bound + _TOLERANCE if kind == "max_drop" else measured >= bound - _TOLERANCE
    word = "worsened" if gain < 0 else "improved"
    limit = "at most" if kind == "max_drop" else "at least"
    noun = "drop" if kind == "max_drop" else "gain"
    text = (
        f"{rule.metric} {word} {format_magnitude(gain, info.binary)} vs base "
        f"({noun} must be {limit} {format_magnitude(bound, info.binary)})"
    )
    return _verdict(rule, kind, variant, template, measured, bound, ok, text, info.binary)


def _not_worse(report: Report, rule: GateRule, info: MetricInfo, variant: str, template: str) -> GateCheck:
    """Fails when the paired comparison with base is Holm-significant in the bad direction."""
    comparison = next(
        (
            c
            for c in report.comparisons_of(rule.probe, "base")
            if (c.metric, c.template, c.variant) == (rule.metric, template, variant)
        ),
        None,
    )
    kind: GateCheckKind = "not_worse_than_base"
    if comparison is None:
        return _skipped(rule, kind, variant, template, f"no paired comparison of {rule.metric} with base")
    worse = comparison.significant and comparison.direction == "worse"
    state = "significantly worse" if worse else "not significantly worse"
    text = f"{rule.metric} {state} than base (Δ {format_magnitude(comparison.delta, info.binary)} {'down' if comparison.delta < 0 else 'up'}, Holm-adjusted {format_p(comparison.adjusted_p)})"
    return _verdict(rule, kind, variant, template, comparison.adjusted_p, None, not worse, text, info.binary)


def _gain_vs_base(
    report: Report, probe: ProbeResult, info: MetricInfo, variant: str, template: str
) -> float | None:
    """Change vs base in the good direction: the paired delta when compared, else the difference of cell values."""
    comparison = next(
        (
            c
            for c in report.comparisons_of(probe.name, "base")
            if (c.metric, c.template, c.variant) == (info.name, template, variant)
        ),
        None,
    )
    if comparison is not None:
        delta: float | None = comparison.delta
    else:
        value, base = _value(probe, variant, template, info.name), _value(probe, BASE, template, info.name)
        delta = None if value is None or base is None or variant == BASE else value - base
    if delta is None:
        return None
    return delta if info.higher_is_better else -delta


def _templates_with_values(probe: ProbeResult, variant: str, metric: str) -> list[str]:
    return [template for template in probe.templates if _value(probe, variant, template, metric) is not None]


def _value(probe: ProbeResult, variant: str, template: str, metric: str) -> float | None:
    cell = probe.cell(variant, template)
    value = None if cell is None else cell.metric(metric)
    return None if value is None or value.value is None or not math.isfinite(value.value) else value.value


def _verdict(
    rule: GateRule,
    kind: GateCheckKind,
    variant: str,
    template: str,
    value: float,
    bound: float | None,
    ok: bool,
    message: str,
    binary: bool,
) -> GateCheck:
    return GateCheck(
        rule=rule.name,
        check=kind,
        probe=rule.probe,
        metric=rule.metric,
        variant=variant,
        template=template,
        severity=rule.severity,
        binary=binary,
        value=value,
        bound=bound,
        verdict="pass" if ok else rule.severity,
        message=message,
    )


def _skipped(
    rule: GateRule, kind: GateCheckKind, variant: str | None, template: str | None, why: str
) -> GateCheck:
    return GateCheck(
        rule=rule.name,
        check=kind,
        probe=rule.probe,
        metric=rule.metric,
        variant=variant,
        template=template,
        severity=rule.severity,
        value=None,
        bound=dict(rule.checks()).get(kind),
        verdict="skipped",
        message=why,
    )
