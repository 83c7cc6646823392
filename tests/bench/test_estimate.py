"""Time left in a sweep (bench/estimate.py): runs of one shape share a measured step cost, a
preempted run counts only its remaining steps, measurements count nothing."""
from seqbench.bench.estimate import estimate, format_duration, shape
from seqbench.bench.store import Store
from seqbench.bench.sweep import expand

SPEC = {"name": "tiny", "seeds": [0, 1], "grid": {"optimizer.lr": [1e-3, 1e-2], "model.name": ["gateloop", "retnet"]},
        "base": {"steps": 40, "batch_size": 4, "eval_every": 20, "threads": 1,
                 "model": {"n_layers": 1, "mlp_ratio": 2, "target_parameters": 3000},
                 "task": {"name": "mqar", "options": {"vocab_size": 32, "seq_len": 16, "num_pairs": 2}}}}


def test_lr_and_seed_leave_the_shape_alone_and_the_mixer_does_not():
    runs = expand(SPEC).runs
    assert len({shape(run) for run in runs}) == 2


def test_each_shape_is_probed_once_and_a_preempted_run_counts_its_remaining_steps(tmp_path):
    sweep, probes = expand(SPEC), []

    def probe(run):
        probes.append(run.model.name)
        return 0.5

    run_dir = Store(tmp_path).run("tiny", sweep.runs[0].run_id())
    run_dir.write_status("preempted", step=30)
    found = estimate(sweep, tmp_path, probe=probe)
    assert sorted(probes) == ["gateloop", "retnet"] and found.probed == 2
    assert found.seconds == 0.5 * (7 * 40 + 10) and found.finished == 0 and found.runs == 8
    assert "8 runs, 0 finished, 8 to run: ≈ 72 s here at 2 at once (from a probe of each shape)" == found.describe(2)


def test_a_real_probe_times_training_steps_here(tmp_path):
    found = estimate(expand({**SPEC, "seeds": [0], "grid": {"model.name": ["gateloop"]}}), tmp_path)
    assert found.probed == 1 and 0 < found.seconds < 40 * 5  # a 3,000-parameter model: far below 5 s a step


def test_durations_read_as_a_person_says_them():
    assert [format_duration(s) for s in (12, 600, 7200, float("nan"))] == ["12 s", "10 min", "2.0 h", "unknown"]
