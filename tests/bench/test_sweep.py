"""Sweep files (bench/sweep.py): grid, zip and seeds; bad sweeps; every shipped sweep file."""
from pathlib import Path

import pytest

from seqbench.bench.sweep import expand
from seqbench.slurm.parameters import executor_parameters
from tests.helpers import sweep_spec


def test_sweep_expands_grid_zip_and_seeds():
    sweep = expand(sweep_spec(zip={"model.d_model": [16, 32], "optimizer.lr": [1e-3, 3e-3]}))
    assert len(sweep.runs) == 2 * 2 * 2
    assert {(r.model.name, r.model.d_model, r.optimizer.lr, r.seed) for r in sweep.runs} == {
        (m, d, lr, s) for m in ("retnet", "linear_attention") for d, lr in ((16, 1e-3), (32, 3e-3)) for s in (0, 1)}


@pytest.mark.parametrize("change,message", [
    ({"nam": "x"}, "unknown key\\(s\\) 'nam'; valid keys: name, seeds, base, grid, zip, vary, executor"),
    ({"name": "a b"}, "'name' must be letters"),
    ({"seeds": []}, "'seeds' must be a non-empty list"),
    ({"zip": {"model.d_model": [16, 32], "seed": [1]}}, "\\[zip\\] lists must have one length"),
    ({"zip": {"model.name": ["retnet"]}}, "appears in both \\[grid\\] and \\[zip\\]"),
    ({"grid": {"model.name": ["retnet", "rnn"]}}, "(?s)the run with model.name='rnn', seed=0 is invalid: .*unknown mixer 'rnn'"),
])
def test_bad_sweeps(change, message):
    with pytest.raises(ValueError, match=message):
        expand(sweep_spec(**change))


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "sweeps").rglob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_sweep_file_expands_into_valid_runs(path):
    from seqbench.bench.sweep import load_sweep

    sweep = load_sweep(path)
    assert sweep.runs and len({run.run_id() for run in sweep.runs}) == len(sweep.runs)
    executor_parameters(sweep.executor, {})


def test_sweep_axes_ignore_other_mixers_option_defaults():
    import pandas as pd

    from seqbench.analysis.collect import varying_columns

    runs = pd.DataFrame({
        "model.name": ["gateloop", "gateloop", "retnet", "softmax_attention"],
        "model.options.backend": ["auto", "auto", None, "sdpa"],  # each mixer's own default: not an axis
        "model.options.heads": [8, 16, 4, 4],  # varies within gateloop: an axis
        "optimizer.lr": [1e-3, 1e-3, 1e-3, 1e-3],
    })
    assert varying_columns(runs) == ["model.name", "model.options.heads"]


@pytest.mark.faults
def test_a_sweep_too_large_is_refused_at_once_with_its_count(tmp_path):
    """10⁵ runs: refused before one run is made (it used to take minutes and a gigabyte to list)."""
    import time

    spec = sweep_spec(seeds=list(range(100)), grid={"optimizer.lr": [1e-4 * (i + 1) for i in range(100)],
                                                    "optimizer.warmup_steps": list(range(10))})
    started = time.perf_counter()
    with pytest.raises(ValueError, match="expands to 100,000 runs, more than the limit of 10,000; pass --max-runs 100000"):
        expand(spec)
    assert time.perf_counter() - started < 1.0
    assert len(expand(sweep_spec(seeds=list(range(6))), max_runs=12).runs) == 12


def test_overriding_an_axis_of_the_sweep_names_the_axis(tmp_path):
    from seqbench.bench.sweep import load_sweep

    path = tmp_path / "tuning.toml"
    path.write_text('name = "t"\n[base]\nsteps = 5\n[zip]\n"optimizer.lr" = [1e-3, 3e-3]\n"model.name" = ["retnet", "retnet"]\n')
    with pytest.raises(ValueError, match=r"'optimizer.lr' is a \[zip\] axis of .*tuning.toml \(values \[0.001, 0.003\]\); "
                                         "an override of the base would be ignored"):
        load_sweep(path, ["optimizer.lr=fast"])
    with pytest.raises(ValueError, match="seeds are the sweep's own key"):
        load_sweep(path, ["seed=3"])


def test_unreadable_sweep_files_fail_in_one_line(tmp_path):
    from seqbench.bench.sweep import MAX_FILE_BYTES, load_sweep

    nested = tmp_path / "nested.toml"
    nested.write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ValueError, match="nested too deeply to read"):
        load_sweep(nested)
    huge = tmp_path / "huge.toml"
    huge.write_text('name = "h"\nseeds = [' + ", ".join(["1"] * (MAX_FILE_BYTES // 3)) + "]\n")
    with pytest.raises(ValueError, match="a sweep file is at most 1,048,576"):
        load_sweep(huge)



def test_vary_changes_one_axis_at_a_time_around_the_base():
    sweep = expand(sweep_spec(seeds=[0], grid={"model.name": ["retnet"]},
                              vary={"task.options.num_pairs": [3, 4], "task.options.seq_len": [48]}))
    settings = sorted((r.task.options["num_pairs"], r.task.options["seq_len"]) for r in sweep.runs)
    assert settings == [(2, 32), (2, 48), (3, 32), (4, 32)]  # the base (2 pairs, length 32) and each change alone
    with pytest.raises(ValueError, match=r"appears in both \[grid\] and \[vary\]"):
        expand(sweep_spec(grid={"task.options.num_pairs": [3]}, vary={"task.options.num_pairs": [4]}))
