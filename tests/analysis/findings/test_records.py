"""The findings registry: 12 records with their rules, every sweep valid at both scales, fair by
construction, and the report from real (tiny) runs to a README with verdicts."""
import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from seqbench.analysis import findings
from seqbench.analysis.findings import FINDINGS, Arm, Finding, Probe
from seqbench.analysis.findings.records import GATELOOP
from seqbench.analysis.findings.report import write_report
from seqbench.analysis.findings.scales import LR_GRID
from seqbench.analysis.findings.verdicts import Better, Crossover, Monotone, Ratio, Similar
from seqbench.cli import main
from seqbench.slurm.executors import submit
from seqbench.slurm.parameters import executor_parameters

IDS = ["U1", "U3", "U5", "U7a", "U7b", "U8", "U9/U10", "U11", "U13", "U14", "P1", "P2", "S1", "S2"]


def test_the_findings_and_the_rule_kinds_they_use():
    assert [finding.id for finding in FINDINGS] == IDS
    kinds = {type(rule) for finding in FINDINGS for rule in finding.rules}
    assert kinds == {Better, Similar, Crossover, Monotone, Ratio}
    for finding in FINDINGS:
        probes = {probe.name for probe in finding.probes}
        for rule in finding.rules:  # every rule reads a probe of its finding and arms that probe runs
            probe = next(p for p in finding.probes if p.name == (rule.probe or finding.probes[0].name))
            assert rule.probe is None or rule.probe in probes
            labels = {arm.label for arm in probe.arms}
            named = {getattr(rule, key) for key in ("a", "b", "late", "early") if hasattr(rule, key)} | set(getattr(rule, "levels", ()))
            assert named <= labels, (finding.id, named - labels)


def test_list_shows_every_record_with_its_decision_rule(capsys):
    main(["findings", "list"])
    listing = capsys.readouterr().out
    for finding in FINDINGS:
        assert f"{finding.id:<7} {finding.claim}" in listing
        assert finding.rules[0].describe() in listing
    with pytest.raises(SystemExit, match="unknown finding.*U99.*valid: U1"):
        main(["findings", "list", "U99"])


@pytest.mark.slow
@pytest.mark.parametrize("scale", findings.SCALES)
def test_every_sweep_expands_validates_and_compares_at_equal_parameters(scale, tmp_path):
    corpus = small_corpus(tmp_path) if scale == "cpu" else None
    for finding in FINDINGS:
        sweep, rows = finding.sweep(scale, corpus)
        assert sweep.name == findings.STORE_FOLDER[scale]
        executor_parameters(sweep.executor, {})  # the executor section is valid for submitit
        by_id = {run.run_id(): run for run in sweep.runs}
        for probe in finding.probes:
            runs = [by_id[row["run_id"]] for row in rows if row["probe"] == probe.name and row["run_id"] is not None]
            if probe.lr_from is not None:  # its lrs are another probe's choice: nothing to run before that has run
                assert not runs and {row["lr"] for row in rows if row["probe"] == probe.name} == {None}
                continue
            if runs[0].kind != "train":
                continue
            seeds = {run.seed for run in runs}
            assert seeds == set(findings.SEEDS), (finding.id, probe.name)
            target = runs[0].model.target_parameters
            for run in runs:
                assert abs(run.size()["parameters"] / target - 1) <= 0.02, (finding.id, probe.name, run.model.name)


def test_the_cluster_scale_is_the_reimplementation_setup():
    sweep, rows = findings.BY_ID["P1"].sweep("cluster")
    run = sweep.runs[0]
    assert (run.task.name, run.task.options["seq_len"], run.batch_size, run.grad_accumulation) == ("enwik8", 256, 4, 4)
    assert (run.optimizer.schedule, run.optimizer.weight_decay, run.optimizer.clip_grad_norm) == ("constant", 0.0, 0.5)
    assert run.model.n_layers == 6 and run.steps == 100_000
    assert sweep.executor["gpus_per_node"] == 1
    assert {row["lr"] for row in rows} == set(LR_GRID["cluster"])


def small_corpus(tmp_path):
    """A stand-in for GCIDE (the cpu scale's corpus, absent on a fresh machine): any bytes do for configs."""
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"Abandon, v. t. To give up wholly. [1913 Webster]\n" * 500)
    return str(path)


def test_the_corpus_is_an_input_and_every_language_model_arm_is_tuned(tmp_path):
    corpus = small_corpus(tmp_path)
    sweep, rows = findings.BY_ID["U7a"].sweep("cpu", corpus)
    assert {run.task.options["path"] for run in sweep.runs} == {corpus}
    assert {run.task.data["bytes"] for run in sweep.runs} == {24_500}
    assert {row["lr"] for row in rows} == set(LR_GRID["cpu"])  # an ablation, tuned like every arm


def test_head_dim_arms_have_exactly_the_head_dimension_they_name(tmp_path):
    sweep, rows = findings.BY_ID["U11"].sweep("cpu", small_corpus(tmp_path))
    by_id = {run.run_id(): run for run in sweep.runs}
    for row in rows:
        options = by_id[row["run_id"]].model.options
        assert f"head_dim {options['d_inner'] // options['heads']}" == row["arm"]


def test_cluster_run_is_one_command_that_submits_through_slurm(capsys):
    main(["findings", "run", "U8", "--scale", "cluster", "--executor", "slurm", "--dry-run"])
    listing = capsys.readouterr().out
    assert "findings-cluster: 18 runs" in listing and "enwik8" in listing and listing.count("would submit") == 18  # 2 arms × 3 lrs × 3 seeds


TINY_BASE = {
    "steps": 12, "batch_size": 4, "eval_every": 4, "checkpoint_every": 4, "threads": 1, "final_split": "test",
    "model": {"n_layers": 1, "mlp_ratio": 2, "target_parameters": 3000},
    "task": {"name": "mqar", "options": {"vocab_size": 32, "seq_len": 16, "num_pairs": 2, "validation_examples": 16,
                                         "test_examples": 16}},
}


def test_report_from_real_runs_writes_verdicts_tables_and_plots(tmp_path):
    probe = Probe("mqar/tiny", copy.deepcopy(TINY_BASE), (Arm("gateloop", {"model.name": "gateloop"}),
                                                        Arm("retnet", {"model.name": "retnet"})))
    finding = Finding("T1", "gateloop beats retnet on a tiny MQAR", "this test", (probe,),
                      (Better("gateloop", "retnet", metric="final_accuracy"),
                       Crossover("gateloop", "retnet", metric="validation_accuracy")))
    sweep, rows = finding.sweep("cpu")
    assert len(sweep.runs) == 6
    submission = submit(sweep, executor="debug", root=tmp_path / "runs", echo=lambda line: None)
    assert not submission.failed
    written = write_report([finding], "cpu", root=tmp_path / "runs", out=tmp_path / "out")
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "| T1 | gateloop beats retnet on a tiny MQAR |" in readme
    assert any(f"**{verdict}**" in readme for verdict in ("reproduced", "contradicted", "inconclusive"))
    table = pd.read_csv(tmp_path / "out" / "cpu" / "T1" / "runs.csv")
    assert len(table) == 6 and set(table["status"]) == {"completed"}
    assert {"parameters", "lr", "seed", "provenance.commit", "final_accuracy"} <= set(table.columns)
    assert (tmp_path / "out" / "cpu" / "T1" / "plot.png").stat().st_size > 10_000
    assert len(written) == 3


def test_an_arm_best_at_the_top_of_its_grid_gets_the_next_lr_and_the_report_says_so(tmp_path):
    """The base grid's runs written as the runner writes them (U8's two arms, 3 lrs × 3 seeds): the
    joint-kv arm is best at 3e-2, the top, so its grid gains 9e-2 (3 more runs); gateloop's is interior."""
    from seqbench.analysis.collect import collect
    from seqbench.analysis.findings.report import write_report
    from seqbench.bench.store import Store

    corpus, finding = small_corpus(tmp_path), findings.BY_ID["U8"]
    sweep, rows = finding.sweep("cpu", corpus)
    by_id = {run.run_id(): run for run in sweep.runs}
    bpc = {"gateloop": {3e-3: 2.0, 1e-2: 1.8, 3e-2: 1.9}, "joint kv": {3e-3: 2.1, 1e-2: 1.95, 3e-2: 1.85}}
    for row in rows:
        run_dir = Store(tmp_path / "runs").run("findings-cpu", row["run_id"])
        run_dir.write_config(by_id[row["run_id"]].model_dump(mode="json"), {"commit": "0" * 40, "dirty": False})
        value = bpc[row["arm"]][row["lr"]] + row["seed"] / 100
        run_dir.write_summary({"status": "completed", "steps": 1000, "validation_bpc": value, "final_bpc": value,
                               "parameters": 120_000})
    results = collect("findings-cpu", tmp_path / "runs", save=False)[0]
    _, extended = finding.sweep("cpu", corpus, results)
    lrs = {arm: sorted({row["lr"] for row in extended if row["arm"] == arm}) for arm in bpc}
    assert lrs["gateloop"] == [3e-3, 1e-2, 3e-2] and lrs["joint kv"] == [3e-3, 1e-2, 3e-2, 0.09]
    write_report([finding], "cpu", root=tmp_path / "runs", out=tmp_path / "report", corpora=[corpus])
    readme = (tmp_path / "report" / "README.md").read_text()
    # the extension's runs have not run: the arm has no chosen lr until every seed of its grid has finished
    assert "joint kv: – of 0.003, 0.01, 0.03, 0.09; extended: 0.09 added: 0.03 was best at the top of 0.003…0.03" in readme
    assert "**not run (18 of 21)**" in readme  # the extension's three runs are part of the finding now


def test_an_equivalence_rule_plans_its_seeds_from_the_pilot_once_and_runs_them_at_the_chosen_lr(tmp_path):
    """U8 (similar within ±0.02): pilot differences with sd 0.012 need 9 seeds for an expected
    half-width of 0.01; the plan is recorded once and the extra seeds run at each arm's chosen lr."""
    from seqbench.analysis.collect import collect
    from seqbench.analysis.findings.report import plan_path, recorded_seed_plans, write_report
    from seqbench.bench.store import Store
    from seqbench.campaign import record_seed_plans

    corpus, finding = small_corpus(tmp_path), findings.BY_ID["U8"]
    sweep, rows = finding.sweep("cpu", corpus)
    by_id = {run.run_id(): run for run in sweep.runs}
    offset = {0: 0.0, 1: 0.012, 2: 0.024}  # joint kv − gateloop per seed: mean 0.012, sd 0.012
    for row in rows:
        run_dir = Store(tmp_path / "runs").run("findings-cpu", row["run_id"])
        run_dir.write_config(by_id[row["run_id"]].model_dump(mode="json"), {"commit": "0" * 40, "dirty": False})
        value = {3e-3: 2.0, 1e-2: 1.8, 3e-2: 1.9}[row["lr"]] + (offset[row["seed"]] if row["arm"] == "joint kv" else 0.0)
        run_dir.write_summary({"status": "completed", "steps": 1000, "validation_bpc": value, "final_bpc": value, "parameters": 1})
    runs, curves = collect("findings-cpu", tmp_path / "runs", save=False)
    assert recorded_seed_plans(finding, "cpu", corpus, tmp_path / "runs") == {}  # reading never plans
    assert record_seed_plans(finding, "cpu", corpus, runs, curves, tmp_path / "runs", write=False) == {}  # a dry run neither
    plans = record_seed_plans(finding, "cpu", corpus, runs, curves, tmp_path / "runs")
    assert plans[0]["seeds"] == 9 and plans[0]["lrs"] == {"gateloop": 1e-2, "joint kv": 1e-2} and not plans[0]["capped"]
    _, planned = finding.sweep("cpu", corpus, runs, plans)
    extra = [row for row in planned if row["seed"] >= 3]
    assert sorted({row["seed"] for row in extra}) == list(range(3, 9)) and {row["lr"] for row in extra} == {1e-2}
    assert len(extra) == 2 * 6
    record = plan_path(finding, 0, "cpu", corpus, tmp_path / "runs")
    before = record.read_text()
    record_seed_plans(finding, "cpu", corpus, runs.assign(final_bpc=runs["final_bpc"] * 2), curves, tmp_path / "runs")
    assert record.read_text() == before  # recorded once: later numbers never re-plan
    write_report([finding], "cpu", root=tmp_path / "runs", out=tmp_path / "report", corpora=[corpus])
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "9 seeds — pilot sd 0.012: 9 seeds give an expected half-width" in readme and "**not run (18 of 30)**" in readme


def write_finished(root, sweep, rows, value):
    """The rows' runs written as the runner writes a finished run, with `value(row)` as their
    validation and test BPC (and a two-point validation curve ending at it)."""
    from seqbench.bench.store import Store

    by_id = {run.run_id(): run for run in sweep.runs}
    for row in rows:
        if row["run_id"] is None:
            continue
        run_dir = Store(root).run("findings-cpu", row["run_id"])
        run_dir.write_config(by_id[row["run_id"]].model_dump(mode="json"), {"commit": "0" * 40, "dirty": False})
        run_dir.write_summary({"status": "completed", "steps": by_id[row["run_id"]].steps, "validation_bpc": value(row),
                               "final_bpc": value(row), "parameters": 120_000})


def test_the_long_run_waits_for_the_short_grid_then_runs_each_arm_ten_times_longer_at_its_chosen_lr(tmp_path):
    """U9/U10: lm/long has no runs while lm/mixers' grid is unfinished (the report says "not run");
    once it has finished, each arm runs 10,000 steps at the lr it chose (gateloop 3e-2, attention 1e-2)."""
    from seqbench.analysis.collect import collect

    corpus, finding = small_corpus(tmp_path), findings.BY_ID["U9/U10"]
    sweep, rows = finding.sweep("cpu", corpus)
    assert {row["probe"] for row in rows if row["run_id"] is None} == {"lm/long"} and len(sweep.runs) == 18
    best = {"gateloop": 3e-2, "softmax_attention": 1e-2}
    write_finished(tmp_path / "runs", sweep, rows, lambda row: 2.0 + abs(row["lr"] - best[row["arm"]]) + row["seed"] / 100)
    results = collect("findings-cpu", tmp_path / "runs", save=False)[0]
    interior = findings.Arm("gateloop", GATELOOP)
    assert finding.chosen_lr(finding.probe("lm/mixers"), interior, "cpu", corpus, results) is None  # 3e-2: the edge, extended
    extension = [row for row in finding.sweep("cpu", corpus, results)[1] if row["lr"] == 0.09]
    write_finished(tmp_path / "runs", finding.sweep("cpu", corpus, results)[0], extension, lambda row: 2.5)
    results = collect("findings-cpu", tmp_path / "runs", save=False)[0]
    sweep, rows = finding.sweep("cpu", corpus, results)
    long = [row for row in rows if row["probe"] == "lm/long"]
    assert {(row["arm"], row["lr"]) for row in long} == set(best.items()) and len(long) == 6
    by_id = {run.run_id(): run for run in sweep.runs}
    assert {(by_id[row["run_id"]].steps, by_id[row["run_id"]].eval_every) for row in long} == {(10_000, 500)}
    write_report([finding], "cpu", root=tmp_path / "runs", out=tmp_path / "report", corpora=[corpus])
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "**not run (21 of 27)**" in readme  # the long runs are part of the finding before they exist
    assert "lm/long: each arm at the lr chosen in lm/mixers — gateloop: 0.03 · softmax_attention: 0.01." in readme


def test_a_second_corpus_replicates_at_the_lrs_the_first_chose(tmp_path):
    """U8 on two corpora: the first tunes (3 lrs × 3 seeds per arm), the second runs each arm once per
    seed at the first's choice; its runs have their own ids (the corpus's content is in them)."""
    from seqbench.analysis.collect import collect

    first, finding = small_corpus(tmp_path), findings.BY_ID["U8"]
    second = tmp_path / "other.txt"
    second.write_bytes(b"Entity, n. That which has reality and distinctness of being. [WordNet]\n" * 400)
    _, waiting = finding.sweep("cpu", str(second), None, None, replication_of=first)
    assert len(waiting) == 6 and {row["run_id"] for row in waiting} == {None}
    sweep, rows = finding.sweep("cpu", first)
    write_finished(tmp_path / "runs", sweep, rows, lambda row: {3e-3: 2.0, 1e-2: 1.8, 3e-2: 1.9}[row["lr"]] + row["seed"] / 100)
    results = collect("findings-cpu", tmp_path / "runs", save=False)[0]
    replication, replicated = finding.sweep("cpu", str(second), results, None, replication_of=first)
    assert {(row["arm"], row["lr"]) for row in replicated} == {("gateloop", 1e-2), ("joint kv", 1e-2)} and len(replicated) == 6
    assert not {run.run_id() for run in replication.runs} & {row["run_id"] for row in rows}
    assert {run.task.data["sha256"] for run in replication.runs} != {run.task.data["sha256"] for run in sweep.runs}
    write_report([finding], "cpu", root=tmp_path / "runs", out=tmp_path / "report", corpora=[first, str(second)])
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "lm/kv: each arm at the lr chosen on corpus.txt — gateloop: 0.01 · joint kv: 0.01." in readme
    assert "| U8 | one joint kv projection (max heads) gives similar results to separate k and v | **" in readme
    assert "**not run (0 of 6)**" in readme


def test_a_finding_without_a_language_model_probe_has_one_column_whatever_the_corpora(tmp_path):
    first, second = small_corpus(tmp_path), tmp_path / "other.txt"
    second.write_bytes(b"entity, n.\n" * 2000)
    write_report([findings.BY_ID["P2"], findings.BY_ID["U8"]], "cpu", root=tmp_path / "empty", out=tmp_path / "report",
                 corpora=[first, str(second)])
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "| P2 | data-controlled transitions beat fixed decay on the memory-horizon task | **not run (0 of 12)** | – | – | " \
           "**n/a (no corpus)** | – | – |  |" in readme
    assert readme.count("### P2") == 1 and readme.count("### U8") == 2
    assert "Corpus: none (no language-model probe: the same runs for every corpus)" in readme


def test_every_report_plan_and_replication_chooses_the_lr_by_the_mean_over_complete_seeds(tmp_path):
    """One planted grid on which three rules disagree (BPC, lower is better): per seed, lr 3e-3 wins
    seeds 0 and 1 and 1e-2 wins seed 2; over the first two seeds alone (a partial store) 3e-3 wins;
    the mean over all three seeds picks 1e-2. While seed 2 is outstanding nothing is chosen — no lr
    line, no extension below 3e-3, no replication run, no seed plan; once it has finished, the grid
    plan, the report, the verdicts, the replication and the seed plan all take 1e-2."""
    from seqbench.analysis.collect import collect
    from seqbench.analysis.findings.verdicts import at_chosen_lr
    from seqbench.campaign import record_seed_plans

    first, finding = small_corpus(tmp_path), findings.BY_ID["U8"]
    second = tmp_path / "other.txt"
    second.write_bytes(b"Entity, n. That which has reality and distinctness of being. [WordNet]\n" * 400)
    bpc = {3e-3: [1.80, 1.80, 2.10], 1e-2: [1.81, 1.81, 1.81], 3e-2: [2.0, 2.0, 2.0]}
    sweep, rows = finding.sweep("cpu", first)
    root = tmp_path / "runs"

    def state():
        results, curves = collect("findings-cpu", root, save=False)
        arms = {arm.label: finding.chosen_lr(finding.probes[0], arm, "cpu", first, results) for arm in finding.probes[0].arms}
        grids = {arm.label: finding.grid_plan(finding.probes[0], arm, "cpu", first, results).grid for arm in finding.probes[0].arms}
        _, replicated = finding.sweep("cpu", str(second), results, None, replication_of=first)
        write_report([finding], "cpu", root=root, out=tmp_path / "report", corpora=[first, str(second)])
        return results, curves, arms, grids, replicated, (tmp_path / "report" / "README.md").read_text()

    write_finished(root, sweep, [row for row in rows if row["seed"] < 2], lambda row: bpc[row["lr"]][row["seed"]])
    results, curves, arms, grids, replicated, readme = state()
    assert arms == {"gateloop": None, "joint kv": None}
    assert set(grids.values()) == {(3e-3, 1e-2, 3e-2)}  # a partial-seed choice (3e-3, the bottom) would extend to 1e-3
    assert {row["run_id"] for row in replicated} == {None} and len(replicated) == 6
    assert "gateloop: – of 0.003, 0.01, 0.03 · joint kv: – of 0.003, 0.01, 0.03" in readme
    assert record_seed_plans(finding, "cpu", first, results, curves, root) == {}

    write_finished(root, sweep, [row for row in rows if row["seed"] == 2], lambda row: bpc[row["lr"]][row["seed"]])
    results, curves, arms, grids, replicated, readme = state()
    assert arms == {"gateloop": 1e-2, "joint kv": 1e-2}
    assert set(grids.values()) == {(3e-3, 1e-2, 3e-2)}
    assert {(row["arm"], row["lr"]) for row in replicated} == {("gateloop", 1e-2), ("joint kv", 1e-2)}
    assert "gateloop: 0.01 of 0.003, 0.01, 0.03 · joint kv: 0.01 of 0.003, 0.01, 0.03" in readme
    assert "lm/kv: each arm at the lr chosen on corpus.txt — gateloop: 0.01 · joint kv: 0.01." in readme
    table = results.assign(probe="lm/kv", lr=results["optimizer.lr"], arm=results["model.options.kv_projection"].fillna("gateloop"))
    assert set(at_chosen_lr(table, "final_bpc")["lr"]) == {1e-2}  # the verdicts and plots
    plans = record_seed_plans(finding, "cpu", first, results, curves, root)
    assert plans[0]["lrs"] == {"gateloop": 1e-2, "joint kv": 1e-2}


RUN_IDS = Path(__file__).resolve().parents[2] / "fixtures" / "findings_run_ids.json"


@pytest.mark.parametrize("scale", [pytest.param("cpu"), pytest.param("cluster", marks=pytest.mark.slow)])
def test_the_records_plan_the_runs_they_planned_when_their_runs_were_made(scale, tmp_path, monkeypatch):
    """A run's id is the hash of its config: moving or re-wording the findings code must leave every
    planned id as it was, or the archived campaign (results/findings/runs.tar.gz) stops counting. The
    ids were recorded before the records moved into their own file; a deliberate change to a record
    re-records them (and says so in its commit)."""
    monkeypatch.setenv("SEQBENCH_DATA", str(tmp_path))
    (tmp_path / "corpus.txt").write_bytes(bytes(range(32, 127)) * 40)  # fixed bytes: the cpu LM probes' ids
    recorded = json.loads(RUN_IDS.read_text())
    for finding in FINDINGS:
        sweep, _ = finding.sweep(scale, "corpus.txt" if scale == "cpu" else None)
        assert sorted(run.run_id() for run in sweep.runs) == recorded[f"{finding.id} {scale}"], finding.id
