"""Store → pandas (analysis/collect.py) on partial sweeps."""

import pytest

from seqbench.analysis.collect import collect
from seqbench.bench.store import Store
from seqbench.bench.sweep import expand
from seqbench.slurm.executors import submit
from tests.helpers import sweep_spec


def test_collect_works_on_a_partial_sweep(tmp_path):
    sweep = expand(sweep_spec())
    submit(type(sweep)(name="t", runs=sweep.runs[:1]), executor="debug", root=tmp_path, echo=lambda _: None)
    Store(tmp_path).sweep("t").write_listing([run.run_id() for run in sweep.runs], {})  # all known, one finished
    runs_table, _ = collect("t", tmp_path)
    assert sorted(runs_table["status"]) == ["completed", "pending", "pending", "pending"]
    with pytest.raises(ValueError, match="no sweep 'u' under .*; sweeps there: t"):
        collect("u", tmp_path)
