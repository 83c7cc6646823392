"""`seqbench findings list` and `report`: what each finding claims and how it is decided; the verdicts."""
from __future__ import annotations

from seqbench.analysis.findings import Finding


def format_listing(findings: list[Finding]) -> str:
    lines = []
    for finding in findings:
        lines.append(f"{finding.id:<7} {finding.claim}")
        lines.append(f"        source: {finding.source}")
        for probe in finding.probes:
            lr = "best lr on validation" if probe.select_lr else "one lr"
            lines.append(f"        runs:   {probe.name}: {', '.join(arm.label for arm in probe.arms)} ({lr})")
        for number, rule in enumerate(finding.rules):
            lines.append(f"        {'decides' if number == 0 else 'also':<7} {rule.describe()}")
    return "\n".join(lines)
