"""What a finding record is (analysis/findings/finding.py): an arm's overrides and per-scale values,
a corpus replacing the language-model probes' corpus only, speed probes without seeds or lrs."""
import pytest

from seqbench.analysis.findings import BY_ID, select
from seqbench.analysis.findings.finding import Arm, Probe
from seqbench.analysis.findings.scales import LM_BASE


def test_an_arm_overrides_the_base_with_per_scale_values_and_the_corpus_only_in_lm_probes():
    probe = Probe("lm/x", None, (Arm("wide", {"model.name": "gateloop", "model.d_model": {"cpu": 64, "cluster": 512}}),))
    cpu = probe.config_data(probe.arms[0], "cpu", 1e-2, 2, corpus="my.txt")
    cluster = probe.config_data(probe.arms[0], "cluster", None, 0)
    assert cpu["model"]["d_model"] == 64 and cluster["model"]["d_model"] == 512
    assert cpu["task"]["options"]["path"] == "my.txt" and cpu["optimizer"]["lr"] == 1e-2 and cpu["seed"] == 2
    assert cluster["optimizer"]["lr"] == LM_BASE["cluster"]["optimizer"]["lr"]
    with pytest.raises(ValueError, match="--corpus applies to the cpu scale"):
        probe.config_data(probe.arms[0], "cluster", None, 0, corpus="my.txt")


def test_a_measurement_probe_has_one_run_per_arm_and_no_lr():
    u1 = BY_ID["U1"]
    assert all(probe.is_speed and probe.lrs("cpu") == [None] for probe in u1.probes)
    rows = u1.runs("cpu")
    assert {row["seed"] for row in rows} == {0} and len(rows) == sum(len(p.arms) for p in u1.probes)


def test_select_names_unknown_ids_and_the_valid_ones():
    assert [f.id for f in select(["U3", "P1"])] == ["U3", "P1"]
    with pytest.raises(ValueError, match="unknown finding\\(s\\) U99; valid: U1, U3"):
        select(["U99"])
