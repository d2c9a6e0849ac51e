"""Gates against a previous run: did this SFT run regress against the last accepted one?

`sfteval gate RUN --baseline OLD_RUN` compares the chosen checkpoint of RUN (its recommendation after the policy's
own rules, or `--variant NAME`) with the chosen one of OLD_RUN (its stored recommendation, or `--baseline-variant`)
on the items both runs share: same probe version, same item ids, same templates, paired with
`stats.paired_compare` (Newcombe's interval for binary and fraction metrics). Rule kinds:

* `not_worse_than_baseline: true` fails when RUN is significantly worse (Holm over every baseline check);
* `max_drop_vs_baseline: X` fails when RUN is worse by more than X in the metric's good direction.

Items present in one run only are counted and named in the check; a probe whose version changed, or whose items
the two runs do not share at all (the suite changed), cannot be compared: that is bad input (exit 2), never a
silent pass. Both runs need their items.jsonl.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfteval import stats
from sfteval.core.errors import UserError
from sfteval.core.formatting import format_magnitude, format_p
from sfteval.core.records import ItemRecord
from sfteval.core.report import GateCheck, GateCheckKind, GateVerdict, Report, load_report
from sfteval.core.results import MetricInfo
from sfteval.core.run_info import StatsSettings
from sfteval.report.gate import BASELINE_KINDS, GateRule, LoadedPolicy, gate_check
from sfteval.report.items import finite, load_run_items, report_file
from sfteval.report.pairs import compare_records


@dataclass(frozen=True)
class Baseline:
    """What to gate against: the run directories and, optionally, the variants to compare."""

    run: Path
    old: Path
    variant: str | None = None
    old_variant: str | None = None


@dataclass(frozen=True)
class _Paired:
    """One rule's comparison under one template, before Holm."""

    rule: GateRule
    info: MetricInfo
    template: str
    result: stats.Comparison
    unpaired: int


def apply_baseline(report: Report, loaded: LoadedPolicy, baseline: Baseline) -> Report:
    """The gated report with its baseline checks computed (replacing the 'no baseline' rows) and the verdict."""
    if report.gate is None:
        raise ValueError("apply_baseline needs a gated report (apply_gate)")
    old_report = load_report(baseline.old)
    chosen = _chosen(report, baseline.variant, report_file(baseline.run), "--variant")
    old_chosen = _chosen(old_report, baseline.old_variant, report_file(baseline.old), "--baseline-variant")
    where = f"{old_chosen} of {baseline.old}"
    records = _records(baseline.run, report, chosen), _records(baseline.old, old_report, old_chosen)
    notes: list[str] = []
    paired: list[_Paired] = []
    skipped: list[GateCheck] = []
    for rule in loaded.policy.rules:
        if any(kind in BASELINE_KINDS for kind, _ in rule.checks()):
            found, missing = _rule_pairs(rule, report, old_report, records, notes)
            paired += found
            skipped += [_skipped(rule, kind, chosen, why, where) for kind in _kinds(rule) for why in missing]
    checks = _verdicts(paired, chosen, where) + skipped
    kept = [check for check in report.gate.checks if check.check not in BASELINE_KINDS]
    failed = any(check.verdict == "fail" for check in checks)
    gate = report.gate.model_copy(
        update={
            "checks": tuple(kept + checks),
            "passed": report.gate.passed and not failed,
            "baseline": where,
            "notes": tuple(dict.fromkeys(notes)),
        }
    )
    return report.model_copy(update={"gate": gate})


def _chosen(report: Report, requested: str | None, file: Path, option: str) -> str:
    """The named variant, or the report's recommended one; a UserError when there is neither."""
    names = [variant.name for variant in report.run.variants]
    if requested is not None and requested != "recommended":
        if requested not in names:
            raise UserError(f"{option} {requested!r}: not a variant of {file} ({', '.join(names)})")
        return requested
    recommended = report.recommendation.variant if report.recommendation is not None else None
    if recommended is None:
        raise UserError(
            f"{file}: no recommended checkpoint to compare",
            hint=f"name one with {option} NAME (variants: {', '.join(names)})",
        )
    return recommended


def _records(run: Path, report: Report, variant: str) -> list[ItemRecord]:
    """The chosen variant's item records; baseline gating pairs items, so items.jsonl must be there."""
    records = load_run_items(run, report)
    if records is None:
        raise UserError(
            f"{report_file(run)}: no items.jsonl next to it; gating against a baseline pairs items"
        )
    return [record for record in records if record.variant == variant]


def _rule_pairs(
    rule: GateRule,
    report: Report,
    old_report: Report,
    records: tuple[Sequence[ItemRecord], Sequence[ItemRecord]],
    notes: list[str],
) -> tuple[list[_Paired], list[str]]:
    """The rule's paired comparisons per shared template, or why there are none (skipped reasons)."""
    probe, old_probe = report.probe(rule.probe), old_report.probe(rule.probe)
    if probe is None or old_probe is None:
        side = "this run" if probe is None else "the baseline run"
        return [], [f"probe {rule.probe} is not in {side}"]
    if probe.version != old_probe.version:
        raise UserError(
            f"{rule.name}: probe {rule.probe} is version {probe.version} here but {old_probe.version} in the "
            "baseline run, so their items measure different things",
            hint="gate against a baseline run made with the same probe versions (or re-run the baseline)",
        )
    info = probe.metric_info(rule.metric)
    if info is None or not info.per_item:
        return [], [f"{rule.metric} of {rule.probe} is not a per-item metric of this run"]
    if info.higher_is_better is None and rule.max_drop_vs_baseline is not None:
        raise UserError(
            f"rule {rule.name}: {rule.metric} has no good direction, so max_drop_vs_baseline does not apply"
        )
    mine = [record for record in records[0] if record.probe == rule.probe]
    theirs = [record for record in records[1] if record.probe == rule.probe]
    found = [
        pair
        for template in dict.fromkeys(record.template for record in mine)
        if (pair := _pair(rule, info, template, (mine, theirs), report.stats, notes)) is not None
    ]
    if not found and mine and theirs:
        raise UserError(
            f"{rule.name}: this run and the baseline share no {rule.probe} items "
            f"(suite {report.run.suite_name} vs {old_report.run.suite_name}): nothing can be paired",
            hint="gate against a baseline run of the same suite",
        )
    return found, [] if found else [f"no {rule.metric} values to pair in one of the runs"]


def _pair(
    rule: GateRule,
    info: MetricInfo,
    template: str,
    records: tuple[Sequence[ItemRecord], Sequence[ItemRecord]],
    settings: StatsSettings,
    notes: list[str],
) -> _Paired | None:
    """This run vs the baseline on one template's shared items (Δ = this run − baseline)."""
    here = [record for record in records[0] if record.template == template]
    there = [record for record in records[1] if record.template == template]
    paired = compare_records(
        here,
        there,
        lambda record: finite(record.metrics.get(info.name)),
        settings,
        info.binary or info.fraction,
        rule.name,
        same_run=False,
    )
    if paired.comparison is None:
        if there:
            notes.append(f"{rule.probe} ({template}): no item ids in common with the baseline run")
        return None
    pairs = paired.pairing
    unpaired = pairs.unmatched_a + pairs.unmatched_b
    if unpaired:
        notes.append(
            f"{rule.probe} ({template}): {pairs.unmatched_a} items of this run and {pairs.unmatched_b} of the "
            "baseline run have no partner (the suite's items changed); compared on the shared ones"
        )
    return _Paired(rule, info, template, paired.comparison, unpaired)


def _verdicts(paired: Sequence[_Paired], variant: str, where: str) -> list[GateCheck]:
    """Every baseline check, Holm-correcting the not-worse tests together."""
    tests = [pair for pair in paired if pair.rule.not_worse_than_baseline]
    corrected = stats.holm([pair.result.p_value for pair in tests]) if tests else []
    adjusted = {id(pair): result for pair, result in zip(tests, corrected, strict=True)}
    checks = []
    for pair in paired:
        for kind in _kinds(pair.rule):
            checks.append(_verdict(pair, kind, variant, where, adjusted.get(id(pair))))
    return checks


def _verdict(
    pair: _Paired, kind: GateCheckKind, variant: str, where: str, holm: stats.HolmResult | None
) -> GateCheck:
    """One baseline check's value, bound and verdict."""
    rule, info, result = pair.rule, pair.info, pair.result
    good = result.delta if info.higher_is_better is not False else -result.delta
    change = f"Δ {'+' if result.delta >= 0 else '-'}{format_magnitude(result.delta, info.binary)}"
    over = f"over {result.n} paired items" + (f", {pair.unpaired} unpaired" if pair.unpaired else "")
    if kind == "not_worse_than_baseline":
        assert holm is not None
        worse = holm.significant and good < 0
        state = "significantly worse" if worse else "not significantly worse"
        message = (
            f"{rule.metric} {state} than the baseline ({change} {over}, Holm {format_p(holm.adjusted_p)})"
        )
        value, ok = holm.adjusted_p, not worse
    else:
        bound = rule.max_drop_vs_baseline or 0.0
        value, ok = -good, -good <= bound + 1e-9
        message = (
            f"{rule.metric} {'dropped' if good < 0 else 'did not drop'} vs the baseline ({change} {over}; the drop "
            f"must be at most {format_magnitude(bound, info.binary)})"
        )
    verdict: GateVerdict = "pass" if ok else rule.severity
    return _check(rule, kind, variant, where, template=pair.template, binary=info.binary, value=value,
                  verdict=verdict, message=message, n_pairs=result.n, unpaired=pair.unpaired)  # fmt: skip


def _check(rule: GateRule, kind: GateCheckKind, variant: str, where: str, **outcome: Any) -> GateCheck:
    """A GateCheck of `rule`'s baseline `kind` on `variant`, with its outcome (value, verdict, message, …)."""
    value = outcome.pop("value", None)
    finite_value = None if value is None or not math.isfinite(value) else value
    bound = rule.max_drop_vs_baseline if kind == "max_drop_vs_baseline" else None
    template = outcome.pop("template", None)
    return gate_check(
        rule, kind, variant, template, value=finite_value, bound=bound, baseline=where, **outcome
    )


def _skipped(rule: GateRule, kind: GateCheckKind, variant: str, why: str, where: str) -> GateCheck:
    return _check(rule, kind, variant, where, verdict="skipped", message=why)


def _kinds(rule: GateRule) -> list[GateCheckKind]:
    return [kind for kind, _ in rule.checks() if kind in BASELINE_KINDS]
