"""Published findings, reproduced: the records (records.py, what each claim is and how it is decided)
over their types (finding.py) and scales (scales.py); planning.py extends lr grids and plans seeds,
verdicts.py holds the decision rules, report.py and plots.py write the verdicts. The campaign that
runs them (plan → submit → re-plan) is orchestration: seqbench/campaign.py.
"""
from seqbench.analysis.findings.finding import Arm, Finding, Probe, missing_corpus
from seqbench.analysis.findings.records import BY_ID, FINDINGS, select
from seqbench.analysis.findings.scales import SCALE_LIMITS, SCALES, SEEDS, STORE_FOLDER

__all__ = ["BY_ID", "FINDINGS", "SCALES", "SCALE_LIMITS", "SEEDS", "STORE_FOLDER", "Arm", "Finding", "Probe", "missing_corpus", "select"]
