"""Reports written from collected tables (analysis/report.py): what a sweep with missing runs says."""
import pytest

from seqbench.analysis.report import export_results
from seqbench.bench.config import parse_run_config
from seqbench.bench.runner import run_in_foreground
from seqbench.bench.store import Store
from tests.helpers import tiny_run_config


def test_a_report_on_a_sweep_whose_runs_have_not_started_names_the_missing_runs(tmp_path):
    """Right after a Slurm submission: the listing names runs that have written nothing yet."""
    ids = sorted(parse_run_config(tiny_run_config(seed=seed)).run_id() for seed in range(3))
    Store(tmp_path).sweep("queued").write_listing(ids, {}, "seqbench sweep queued.toml --executor slurm")
    with pytest.raises(ValueError, match=rf"sweep 'queued' has no finished run to report \(3 run\(s\): 3 pending\); "
                                         rf"missing: {ids[0]}, {ids[1]}, {ids[2]}"):
        export_results("queued", tmp_path, tmp_path / "out")


def test_a_report_on_a_partly_finished_sweep_lists_what_it_left_out(tmp_path):
    configs = [parse_run_config(tiny_run_config(steps=4, seed=seed)) for seed in range(2)]
    run_in_foreground(configs[0], root=tmp_path, sweep="part", progress=False)
    sweep_dir = Store(tmp_path).sweep("part")
    sweep_dir.write_listing([c.run_id() for c in configs], {}, "seqbench sweep part.toml")
    stored = sweep_dir.run(configs[0].run_id()).read_config()
    stored["provenance"].update(commit="f" * 40, dirty=False)
    sweep_dir.run(configs[0].run_id()).write_config(stored["config"], stored["provenance"])
    export_results("part", tmp_path, tmp_path / "out")
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "- command: `seqbench sweep part.toml`" in readme
    assert f"- missing: 1 run(s) not finished, left out: {configs[1].run_id()}" in readme


@pytest.mark.faults
def test_a_full_disk_while_exporting_leaves_every_earlier_file_whole(tmp_path):
    """results/ is what gets committed: a write that fails half-way (a real ENOSPC on a small
    file system) must leave the file that was there, byte for byte, and no temporary."""
    import contextlib
    import errno
    import os
    import subprocess

    from seqbench.analysis.plots import plot_sweep
    from seqbench.analysis.report import _write_csv

    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    configs = [parse_run_config(tiny_run_config(steps=4, seed=seed)) for seed in range(3)]
    for config in configs:
        run_in_foreground(config, root=tmp_path / "runs", sweep="full", progress=False)
    from seqbench.analysis.collect import collect

    runs, curves = collect("full", tmp_path / "runs")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        written = [*plot_sweep(runs, curves, small), _write_csv(runs, small / "runs.csv")]
        before = {path.name: path.read_bytes() for path in written}
        with contextlib.suppress(OSError), open(small / "filler", "wb", buffering=0) as filler:
            while True:
                filler.write(b"\0" * 4096)
        with pytest.raises(OSError) as full:
            plot_sweep(runs, curves, small)
        assert full.value.errno == errno.ENOSPC
        with pytest.raises(OSError):
            _write_csv(runs.assign(extra="x" * 1000), small / "runs.csv")
        assert {path.name: path.read_bytes() for path in written} == before
        assert not list(small.glob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_paired_comparisons_are_the_per_seed_differences_at_each_arms_chosen_lr():
    """What `seqbench report` prints and writes (paired.csv): best arm first, a − b per seed at each
    arm's chosen lr (mean validation over seeds), its mean and t-interval."""
    import math

    import pandas as pd

    from seqbench.analysis.report import paired_comparisons

    rows = []
    for model, lr, validation, test in (("a", 1e-3, 0.9, [0.80, 0.82, 0.84]), ("a", 1e-2, 0.5, [0.99, 0.99, 0.99]),
                                         ("b", 1e-3, 0.6, [0.50, 0.51, 0.55]), ("b", 1e-2, 0.4, [0.10, 0.10, 0.10])):
        rows += [{"run_id": f"{model}{lr}{seed}", "model.name": model, "optimizer.lr": lr, "seed": seed, "status": "completed",
                  "validation_accuracy": validation, "final_accuracy": value} for seed, value in enumerate(test)]
    with pytest.warns(UserWarning, match="edge of the grid"):
        [pair] = paired_comparisons(pd.DataFrame(rows)).to_dict("records")
    differences = [0.30, 0.31, 0.29]  # at 1e-3 for both: a's 0.99 at 1e-2 lost on validation
    half = 4.302652729911275 * pd.Series(differences).std() / math.sqrt(3)
    assert (pair["a"], pair["b"], pair["seeds"]) == ("a", "b", 3)
    assert pair["a − b"] == pytest.approx(0.30) and (pair["low"], pair["high"]) == pytest.approx((0.30 - half, 0.30 + half))


def test_paired_arms_beyond_the_mixer_are_named_by_their_fields():
    import pandas as pd

    from seqbench.analysis.report import paired_comparisons

    rows = [{"run_id": f"{heads}{conv}{seed}", "model.name": "gateloop", "model.options.heads": heads,
             "model.options.short_conv": conv, "optimizer.lr": 1e-3, "seed": seed, "status": "completed",
             "validation_accuracy": 0.5, "final_accuracy": 0.2 * heads + 0.1 * conv + 0.01 * seed}
            for heads in (1, 2) for conv in (0, 4) for seed in range(3)]
    pairs = paired_comparisons(pd.DataFrame(rows))
    assert pairs.iloc[0][["a", "b"]].tolist() == ["heads=2, short_conv=4", "heads=1, short_conv=4"]
