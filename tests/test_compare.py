"""`seqbench compare` (seqbench/compare.py) end to end at the quick budget on a user's own mixer
(tests/fixtures/third_party) against two baselines: every suite runs, resumes, and lands in one report."""
from pathlib import Path

import pytest

from seqbench import models
from seqbench.bench.sweep import expand, load_sweep
from seqbench.cli import main
from seqbench.compare import suite_specs

REPO = Path(__file__).resolve().parents[1]

THIRD_PARTY = Path(__file__).resolve().parent / "fixtures" / "third_party"
MIXER = "seqbench_example_mixers.decay:DecayMixer"


def test_suites_compare_at_one_protocol_and_refuse_unknown_names():
    [lm] = suite_specs("gateloop", "lm", "cpu", baselines=["retnet"], corpus="/data/x.txt")
    assert lm["grid"]["model.name"] == ["gateloop", "retnet"] and lm["base"]["model"]["target_parameters"] == 120_000
    assert len(suite_specs("gateloop", "mad", "cpu", baselines=[], corpus=None)) == 6
    from seqbench.compare import default_baselines

    assert default_baselines("gla", "quick", None) == ["softmax_attention"]  # quick: two baselines, never the mixer itself
    assert default_baselines("gateloop", "cpu", None) == [name for name in models.available() if name != "gateloop"]
    assert default_baselines("gateloop", "quick", ["retnet"]) == ["retnet"]
    with pytest.raises(ValueError, match="unknown suite 'zoo'; valid: mqar, mad, lm, speed, state, length, all"):
        suite_specs("gateloop", "zoo", "cpu", baselines=[], corpus=None)


@pytest.mark.parametrize("budget", ["quick", "cpu"])
def test_every_training_suite_counts_every_baselines_parameters_and_state(tmp_path, budget):
    """What compare prints before it submits (parameters, state) for every mixer in every training
    suite: softmax attention's KV cache is counted at the task's own length (the state suite's words
    have no seq_len option; it failed there, after six minutes of MQAR and MAD)."""
    from seqbench.compare import SUITES

    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"x" * 50_000)
    baselines = [name for name in models.available() if name != "gateloop"]
    for suite in (s for s in SUITES if s != "speed"):
        for spec in suite_specs("gateloop", suite, budget, baselines=baselines, corpus=str(corpus)):
            for run in expand(spec).runs:
                size = run.size()
                assert size["parameters"] > 0 and size["state_size"] > 0, (suite, run.model.name)


def test_the_length_suite_trains_at_one_length_and_tests_at_up_to_eight_times_it(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"x" * 50_000)
    mqar, text = suite_specs("gateloop", "length", "cpu", baselines=["retnet"], corpus=str(corpus))
    options = mqar["base"]["task"]["options"]
    assert options["seq_len"] == 64 and [n for n, _ in options["test_configs"]] == [64, 128, 256, 512]
    assert text["base"]["task"]["options"]["test_seq_len"] == 8 * text["base"]["task"]["options"]["seq_len"]
    assert len(expand(mqar).runs) == len(expand(text).runs) == 2 * 3  # mixers × lrs, validated now


def test_the_cpu_mqar_suite_is_the_committed_zoology_cpu_subset():
    """One grid, two entry points: runs of either command are the same run ids, so neither repeats the other."""

    baselines = [name for name in models.available() if name != "gateloop"]
    [spec] = suite_specs("gateloop", "mqar", "cpu", baselines=baselines, corpus=None)
    compared = {run.run_id() for run in expand(spec).runs}
    subset = {run.run_id() for run in load_sweep(REPO / "sweeps" / "mqar-zoology-cpu.toml").runs}
    assert len(compared) == 10 * 2 * 3 * 2 and compared == subset  # mixers × widths × lrs × cells


def test_report_only_submits_nothing_and_reports_every_suite_as_missing(tmp_path):
    from seqbench.compare import compare

    readme = compare("gateloop", suites=["mad", "mqar", "speed", "state"], budget="cpu", root=tmp_path / "runs",
                     out=tmp_path / "report", baselines=["retnet"], run=False)
    text = readme.read_text()
    assert "no finished runs yet (finished: memorization 0 of 6" in text and "mqar 0 of 24" in text
    assert "## speed\n\nmissing: no measurement has finished yet" in text
    assert "no finished runs yet (finished: parity 0 of 6, modular_arithmetic 0 of 6, word_problem 0 of 6)" in text
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_users_mixer_is_compared_through_every_suite_into_one_report(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(THIRD_PARTY))
    monkeypatch.setenv("PYTHONPATH", str(THIRD_PARTY))
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"Abandon, v. t. To give up wholly. [1913 Webster]\n" * 2000)
    argv = ["--root", str(tmp_path / "runs"), "compare", MIXER, "--budget", "quick", "--baselines", "retnet",
            "--corpus", str(corpus), "--out", str(tmp_path / "report"), "--executor", "debug"]
    main(argv)
    readme = (tmp_path / "report" / "README.md").read_text()
    for heading in ("## mqar", "## MAD", "## lm", "## speed", "## state tracking", "## length generalisation"):
        assert heading in readme, readme
    assert MIXER in readme and "MAD score" in readme and "final_bpc" in readme
    assert (tmp_path / "report" / "mqar" / "state_size.png").exists() and (tmp_path / "report" / "speed" / "speed.png").exists()
    assert (tmp_path / "report" / "state" / "word_problem.png").exists()
    assert (tmp_path / "report" / "length" / "mqar.png").exists() and (tmp_path / "report" / "length" / "bytes.png").exists()
    assert "| L=32 | L=64 | L=128 |" in readme  # MQAR at the training length and beyond
    capsys.readouterr()
    main(argv)  # resumable: nothing runs again
    assert "0 to run" in capsys.readouterr().out


@pytest.mark.slow
def test_compare_submits_nothing_more_once_its_sweep_is_cancelled(tmp_path, monkeypatch, capsys):
    """`seqbench cancel` during one of compare's sweeps ends compare there: the later sweeps are not started."""
    import seqbench.campaign as campaign
    import seqbench.compare as compare_module
    from seqbench.bench.store import Store

    real_submit, root = campaign.submit, tmp_path / "runs"

    def submit_then_cancel(sweep, **options):  # the user's `seqbench cancel` lands while the first sweep runs
        submission = real_submit(sweep, **options)
        Store(root).sweep(sweep.name).request_cancel()
        return submission

    monkeypatch.setattr(campaign, "submit", submit_then_cancel)
    readme = compare_module.compare("gateloop", suites=["mad"], budget="quick", executor="debug", root=root,
                                    out=tmp_path / "report", baselines=["gateloop"], echo=print)
    assert readme is None and "nothing more is submitted" in capsys.readouterr().out
    assert sorted(p.name for p in root.iterdir()) == ["compare-gateloop-mad-memorization"]
    assert not (tmp_path / "report").exists()


def write_finished(root, spec, values):
    """Every run of `spec` as the runner leaves it, its accuracies from `values(run)`."""
    from seqbench.bench.store import Store

    for run in expand(spec).runs:
        run_dir = Store(root).run(spec["name"], run.run_id())
        run_dir.write_config(run.model_dump(mode="json"), {"commit": "0" * 40, "dirty": False})
        accuracy = values(run)
        run_dir.write_summary({"status": "completed", "steps": run.steps, "parameters": 10_000, "state_size": 512,
                               "validation_accuracy": accuracy, "final_accuracy": accuracy,
                               "validation_macro_accuracy": accuracy, "final_macro_accuracy": accuracy})


def test_a_suite_with_every_arm_at_chance_is_reported_below_separation_not_ranked_or_calibrated(tmp_path):
    """The quick budget's MQAR (0.003–0.005 at chance 1/256) and MAD at chance: the report says the
    budget cannot separate mixers and compares nothing with published numbers; an lr at an edge is flagged."""
    from seqbench.compare import compare

    root, baselines = tmp_path / "runs", ["softmax_attention"]
    for suite in ("mqar", "mad"):
        for spec in suite_specs("gateloop", suite, "quick", baselines=baselines, corpus=None):
            write_finished(root, spec, lambda run: 0.003 + run.optimizer.lr / 10)  # the largest lr best: at the edge
    text = compare("gateloop", suites=["mqar", "mad"], budget="quick", root=root, out=tmp_path / "report",
                   baselines=baselines, run=False).read_text()
    assert text.count("**Below the budget where this suite separates mixers:**") == 2
    assert "Against published MAD results" not in text and "seqbench's quick reduction of MAD" in text
    assert "**lr at edge of the grid**" in text and "softmax_attention on memorization (lr 0.01)" in text
    for spec in suite_specs("gateloop", "mad", "quick", baselines=baselines, corpus=None)[:1]:  # one task learned: calibrated
        write_finished(root, spec, lambda run: 0.9)
    text = compare("gateloop", suites=["mad"], budget="quick", root=root, out=tmp_path / "report2",
                   baselines=baselines, run=False).read_text()
    assert "Below the budget" not in text and "Against published MAD results" in text


def test_dry_run_prints_each_suites_runs_and_time_left_from_measured_step_costs(tmp_path, capsys):
    """Nothing is submitted; a suite with finished runs is timed by them (wall time over steps), the
    rest by a few probe steps of each shape; a bad Slurm parameter fails before anything runs."""
    from seqbench.bench.store import Store

    root = tmp_path / "runs"
    [spec, *_] = suite_specs("gateloop", "state", "quick", baselines=["retnet"], corpus=None)
    for run in [run for run in expand(spec).runs if run.optimizer.lr == 3e-3]:  # each mixer at one lr: 6 s for 30 steps
        run_dir = Store(root).run(spec["name"], run.run_id())
        run_dir.write_config(run.model_dump(mode="json"), {"commit": "0" * 40, "dirty": False})
        run_dir.write_summary({"status": "completed", "steps": 30, "wall_time_s": 6.0})
    main(["--root", str(root), "compare", "gateloop", "--suite", "state", "--budget", "quick", "--baselines", "retnet", "--dry-run"])
    out = capsys.readouterr().out
    assert f"{spec['name']}: 4 runs, 2 finished, 2 to run: ≈ 12 s here at 1 at once (from the finished runs)" in out, out
    assert "compare-gateloop-state-word-problem: 4 runs, 0 finished, 4 to run" in out and "from a probe of each shape" in out
    assert "in all: ≈" in out and sorted(p.name for p in root.iterdir()) == [spec["name"]]  # nothing else written
    with pytest.raises(SystemExit, match="mem_gb"):
        main(["--root", str(root), "compare", "gateloop", "--suite", "state", "--budget", "quick", "--executor", "slurm",
              "--mem-gb", "-3"])
