"""Launching (seqbench/campaign.py): the findings campaign re-plans until a round submits nothing new,
and every launch stops submitting once `seqbench cancel` lands — real tiny runs, submitit's debug executor."""
import copy

from seqbench import campaign
from seqbench.analysis.collect import collect
from seqbench.analysis.findings import Arm, Finding, Probe
from seqbench.analysis.findings.verdicts import Better
from seqbench.bench.store import FINISHED, Store

TINY = {
    "steps": 8, "batch_size": 4, "eval_every": 4, "threads": 1, "final_split": "test",
    "model": {"n_layers": 1, "mlp_ratio": 2, "target_parameters": 3000},
    "task": {"name": "mqar", "options": {"vocab_size": 32, "seq_len": 16, "num_pairs": 2, "validation_examples": 16,
                                         "test_examples": 16}},
}


def tiny_finding() -> Finding:
    probe = Probe("mqar/tiny", copy.deepcopy(TINY), (Arm("gateloop", {"model.name": "gateloop"}),
                                                   Arm("retnet", {"model.name": "retnet"})), select_lr=True)
    return Finding("T1", "a tiny tuned comparison", "this test", (probe,), (Better("gateloop", "retnet", metric="final_accuracy"),))


def test_the_campaign_replans_until_every_run_its_plan_needs_has_finished(tmp_path):
    root, lines, finding = tmp_path / "runs", [], tiny_finding()
    campaign.run_findings([finding], scale="cpu", corpora=[None], root=root, executor="debug", echo=lines.append)
    results = collect("findings-cpu", root, save=False)[0]
    final, rows = finding.sweep("cpu", None, results)  # the plan over everything that ran: nothing left to run
    status = results.set_index("run_id")["status"]
    assert {run.run_id() for run in final.runs} <= set(status.index)
    assert all(status[run.run_id()] in FINISHED for run in final.runs)
    assert len(final.runs) >= 2 * 3 * 3 and all(row["run_id"] for row in rows)  # 2 arms × 3 lrs × 3 seeds at least
    rounds = [line for line in lines if line.startswith("finding T1 (cpu)")]
    assert 1 <= len(rounds) <= 1 + 2 * 2  # the base grid, then at most two extensions per arm


def test_a_cancel_during_a_round_ends_the_campaign_there(tmp_path, monkeypatch):
    root, lines, real_submit = tmp_path / "runs", [], campaign.submit

    def submit_then_cancel(sweep, **options):  # the user's `seqbench cancel` lands while the round runs
        submission = real_submit(sweep, **options)
        Store(root).sweep(sweep.name).request_cancel()
        return submission

    monkeypatch.setattr(campaign, "submit", submit_then_cancel)
    second = Finding("T2", "never reached", "this test", tiny_finding().probes, tiny_finding().rules)
    campaign.run_findings([tiny_finding(), second], scale="cpu", corpora=[None], root=root, executor="debug", echo=lines.append)
    assert [line for line in lines if line.startswith("finding")] == ["finding T1 (cpu):"]
    assert any("findings-cpu was cancelled; nothing more is submitted" in line for line in lines)
