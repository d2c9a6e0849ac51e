"""Reports: the versioned schema (report.json), building it from item records, and rendering it.

Only the schema is re-exported here, so that probes can import `Finding` without importing the report builder
(which imports the probe protocol). Build with `sfteval.report.build.build_report`; render with
`sfteval.report.terminal.render_report`.
"""

from sfteval.report.schema import (
    SCHEMA_VERSION,
    CandidateScore,
    CellResult,
    ComparisonResult,
    Finding,
    MetricInfo,
    MetricValue,
    ProbeResult,
    Recommendation,
    Report,
    RunInfo,
    StatsSettings,
    VariantInfo,
    load_report,
    save_report,
)

__all__ = [
    "SCHEMA_VERSION",
    "CandidateScore",
    "CellResult",
    "ComparisonResult",
    "Finding",
    "MetricInfo",
    "MetricValue",
    "ProbeResult",
    "Recommendation",
    "Report",
    "RunInfo",
    "StatsSettings",
    "VariantInfo",
    "load_report",
    "save_report",
]
