"""The README's verdict table is the committed findings report's, row for row: a re-run that changes
a verdict cannot leave the README quoting the old one."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def verdict_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\| (U|P|S)\d", line)]


def test_the_readme_quotes_every_verdict_of_the_committed_report():
    report = verdict_rows((ROOT / "results" / "findings" / "README.md").read_text())
    from seqbench.analysis.findings import FINDINGS

    assert len(report) == len(FINDINGS)
    assert verdict_rows((ROOT / "README.md").read_text()) == report
