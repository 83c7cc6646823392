"""Executor parameters (slurm/parameters.py): every parameter of submitit's Slurm executor, checked
at config time against submitit's own list and types; the private names that list comes from."""
import typing

import pytest

from seqbench.bench.sweep import expand
from seqbench.slurm.executors import submit
from seqbench.slurm.parameters import SUBMITIT_PRIVATE, _describe, _matches, executor_parameters, submitit_private
from tests.helpers import sweep_spec, write_tiny_sweep


def test_unknown_executor_parameters_fail_loudly():
    with pytest.raises(ValueError, match="unknown executor parameter\\(s\\) 'gpus'; valid: account, additional_parameters, "
                                         "array_parallelism"):
        executor_parameters({"gpus": 1}, {})
    with pytest.raises(ValueError, match="unknown executor 'k8s'; valid executors: local, slurm, debug"):
        submit(expand(sweep_spec()), executor="k8s")


def test_every_parameter_of_submitits_slurm_executor_passes_through_checked():
    from submitit.slurm.slurm import SlurmExecutor

    from seqbench.slurm.parameters import submitit_names, valid_names

    assert set(SlurmExecutor._valid_parameters()) - {"time", "mem", "job_name"} <= set(valid_names())
    chosen = executor_parameters({"setup": ["module load cuda/12"], "additional_parameters": {"reservation": "r1"},
                                  "srun_args": ["--cpu-bind=none"], "exclude": "node3", "mem_per_gpu": "40G",
                                  "cpus_per_gpu": 8, "exclusive": True, "slurm_nodelist": "node[1-2]"}, {"exclude": "node4"})
    assert chosen["exclude"] == "node4" and chosen["nodelist"] == "node[1-2]"  # the command line wins; prefix optional
    names = submitit_names(chosen)
    assert names["slurm_setup"] == ["module load cuda/12"] and names["timeout_min"] == 60 and "slurm_timeout_min" not in names
    for bad, message in (({"setup": "module load cuda"}, "setup must be a list of non-empty strings"),
                         ({"additional_parameters": ["x"]}, "additional_parameters must be a table of name = value"),
                         ({"cpus_per_gpu": "8"}, "cpus_per_gpu must be an integer"),
                         ({"time": 30}, "use 'timeout_min'"), ({"job_name": "x"}, "seqbench names each job")):
        with pytest.raises(ValueError, match=message):
            executor_parameters(bad, {})


def test_slurm_options_on_the_command_line_are_read_as_toml(tmp_path, capsys):
    from seqbench.cli import main
    from seqbench.slurm.parameters import parse_assignment

    assert parse_assignment('setup=["module load cuda", "conda activate x"]') == ("setup", ["module load cuda", "conda activate x"])
    assert parse_assignment("exclude=node3") == ("exclude", "node3")
    with pytest.raises(SystemExit, match="executor parameter cpus_per_gpu must be an integer, got 'many'"):
        main(["--root", str(tmp_path), "sweep", str(write_tiny_sweep(tmp_path)), "--dry-run", "--slurm", "cpus_per_gpu=many"])


def test_the_private_submitit_names_read_are_there_and_a_moved_one_fails_naming_them(monkeypatch):
    """The only private names seqbench reads from submitit: if an upgrade moves one, this fails here,
    not as an AttributeError deep inside a sweep's launch."""
    writer, valid = submitit_private()
    assert "partition" in valid() and "partition" in typing.get_type_hints(writer)
    from submitit.slurm import slurm

    monkeypatch.delattr(slurm, "_make_sbatch_string")
    with pytest.raises(RuntimeError, match="no longer has submitit.slurm.slurm._make_sbatch_string"):
        submitit_private()
    assert len(SUBMITIT_PRIVATE) == 2


def test_container_annotations_are_checked_by_their_origin_not_their_printed_name():
    assert _matches(["a", "b"], list[str]) and not _matches("a", list[str]) and not _matches([1], list[str])
    assert _matches(["x"], typing.Iterable[str]) and _matches({"k": 1}, dict[str, typing.Any]) and not _matches([1], dict)
    assert _describe(list[str]) == "a list of non-empty strings" and _describe(dict[str, int]) == "a table of name = value"
