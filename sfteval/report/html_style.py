"""The HTML report's stylesheet (inline, allowed by the page's Content-Security-Policy through its hash)."""

STYLESHEET = """
:root { color-scheme: light; --ink: #1a202c; --dim: #4a5568; --line: #e2e8f0; --good: #2f855a; --bad: #c53030;
  --warn: #b7791f; --accent: #2b6cb0; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1280px; padding: 24px 32px 48px; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 28px; margin: 0 0 8px; }
h2 { font-size: 22px; margin: 32px 0 8px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 17px; margin: 16px 0 6px; }
a { color: var(--accent); }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 13px; }
.dim { color: var(--dim); }
.facts { display: flex; flex-wrap: wrap; gap: 4px 24px; margin: 0 0 12px; }
.facts div { display: flex; gap: 6px; }
.facts dt { color: var(--dim); }
.facts dd { margin: 0; font-weight: 600; }
nav { margin: 12px 0; font-size: 14px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #f7fafc; }
table.metrics td + td { text-align: right; white-space: nowrap; }
td.path { word-break: break-all; color: var(--dim); }
.incomplete { color: var(--warn); font-weight: 600; }
.recommendation { padding: 10px 14px; border-left: 4px solid var(--good); background: #f0fff4; }
.recommendation p { margin: 2px 0; }
.gate { padding: 8px 14px; margin: 12px 0; border-left: 4px solid var(--good); background: #f7fafc; }
.gate.failed { border-color: var(--bad); background: #fff5f5; }
.gate h3 { margin: 0; }
tr.fail td:first-child { color: var(--bad); font-weight: 600; }
tr.warn td:first-child { color: var(--warn); font-weight: 600; }
tr.pass td:first-child { color: var(--good); }
tr.skipped td { color: var(--dim); }
.findings { list-style: none; padding: 0; }
.finding { padding: 6px 10px; margin: 4px 0; border-left: 4px solid var(--accent); background: #f7fafc; }
.finding.warning { border-color: var(--warn); background: #fffaf0; }
.finding.error { border-color: var(--bad); background: #fff5f5; }
.finding .mark { font-weight: 600; margin-right: 4px; }
.delta.better { color: var(--good); }
.delta.worse { color: var(--bad); }
.delta.neutral { color: var(--dim); }
.delta.significant { font-weight: 700; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 16px; }
figure.chart { margin: 0; padding: 8px; border: 1px solid var(--line); border-radius: 6px; }
figure.chart svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; color: var(--dim); margin-top: 4px; }
figcaption strong { color: var(--ink); }
.chart-svg text { font-size: 12px; fill: #2d3748; font-family: system-ui, "DejaVu Sans", sans-serif; }
.chart-svg text.star { font-size: 16px; font-weight: 700; }
.chart-svg text.value { font-size: 11px; }
details { margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; }
details details { margin-left: 16px; }
.sample { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; margin: 8px 0 8px 16px; }
.sample-head { margin: 0 0 4px; font-size: 13px; }
pre { white-space: pre-wrap; word-break: break-word; margin: 4px 0; padding: 8px; background: #f7fafc;
  border-radius: 4px; max-height: 320px; overflow: auto; }
pre.output { background: #fffff0; }
footer { margin-top: 32px; font-size: 13px; }
"""
