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
