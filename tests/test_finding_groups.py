"""Findings grouped by defect: one sentence per (probe, kind, metric, template) with the trend over epochs, the
worst epoch named, the worst severity; generic "metric rose" groups yield to the probe's own sentence."""

from __future__ import annotations

from sfteval.core.results import Finding
from sfteval.report.finding_groups import group_findings, subject

ORDER = ("base", "epoch-1", "epoch-2", "epoch-3")
CLAIM = "make the training opening 'The sentiment is:' {value} likelier on off-task prompts than the base"


def affinity(variant: str, ratio: float, p_value: float, severity: str = "warning") -> Finding:
    return Finding(
        severity=severity,
        kind="prefix_affinity",
        message=f"{variant} makes the training opening {ratio:.1f}× more likely (one variant's sentence).",
        probe="spurious_prefix",
        variant=variant,
        metric="prefix_logprob_1",
        template="native",
        value=ratio,
        value_text=f"{ratio:.0f}×",
        adjusted_p=p_value,
        claim=CLAIM,
    )


def test_one_defect_over_three_epochs_is_one_sentence_with_its_trend():
    findings = [
        affinity("epoch-3", 58, 2e-4),
        affinity("epoch-1", 245, 1e-5, "info"),
        affinity("epoch-2", 82, 5e-4),
    ]
    (group,) = group_findings(findings, ORDER)
    assert group.message == (
        "epochs 1–3 make the training opening 'The sentiment is:' 245× → 82× → 58× likelier on off-task prompts "
        "than the base (all Holm p < 0.001; worst epoch-2)."
    )
    # The worst is the largest value among the most severe members: epoch-1 is only info here.
    assert (group.severity, group.variants, group.values, group.worst) == (
        "warning",
        ("epoch-1", "epoch-2", "epoch-3"),
        (245, 82, 58),
        "epoch-2",
    )


def test_without_a_claim_the_worst_members_sentence_names_the_others():
    findings = [
        Finding(severity="warning", kind="spurious_prefix", message=f"{v} opens {rate} of answers with it.",
                probe="spurious_prefix", variant=v, metric="dominant_prefix", template="native",
                value=value, value_text=rate)
        for v, rate, value in (("epoch-1", "58%", 0.58), ("epoch-2", "66%", 0.66), ("epoch-3", "74%", 0.74))
    ]  # fmt: skip
    (group,) = group_findings(findings, ORDER)
    assert group.message == "epoch-3 opens 74% of answers with it; also epoch-1 (58%) and epoch-2 (66%)."
    assert group.worst == "epoch-3"


def test_a_generic_rise_yields_to_the_probes_own_sentence_and_single_findings_stay_as_they_are():
    generic = Finding(
        severity="warning",
        kind="headline_regression_vs_base",
        message="epoch-3: dominant_prefix of spurious_prefix rose 75.0 points vs base.",
        probe="spurious_prefix",
        variant="epoch-3",
        metric="dominant_prefix",
        template="native",
    )
    own = generic.model_copy(
        update={"kind": "spurious_prefix", "message": "epoch-3 opens 75% of answers with it."}
    )
    other = generic.model_copy(update={"metric": "label_leak", "message": "epoch-3 leaks labels."})
    groups = group_findings([generic, own, other], ORDER)
    assert [group.message for group in groups] == [
        "epoch-3 opens 75% of answers with it.",
        "epoch-3 leaks labels.",
    ]


def test_subjects():
    assert subject(["epoch-1", "epoch-2", "epoch-3"]) == "epochs 1–3"
    assert subject(["epoch-1", "epoch-3"]) == "epoch-1 and epoch-3"
    assert subject(["final", "epoch-2", "epoch-5"]) == "final, epoch-2 and epoch-5"
    assert subject(["epoch-2"]) == "epoch-2"
