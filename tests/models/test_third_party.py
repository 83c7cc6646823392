"""Mixers from outside the package (seqbench/core.py's Registry): by import path, checked by the same
contract as the built-in ones, trained in a sweep, listed with their origin; and every way a path
can be wrong said in one line. (Entry points of an installed package: tests/test_package.py.)"""
from pathlib import Path

import pytest

from seqbench import models, tasks
from seqbench.bench.sweep import expand
from seqbench.cli import main
from seqbench.models import conformance
from seqbench.slurm.executors import submit
from tests.helpers import tiny_run_config

THIRD_PARTY = Path(__file__).resolve().parents[1] / "fixtures" / "third_party"
GOOD, BROKEN = "seqbench_example_mixers.decay:DecayMixer", "seqbench_example_mixers.decay:PeekingMixer"


@pytest.fixture
def on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(THIRD_PARTY))
    monkeypatch.setenv("PYTHONPATH", str(THIRD_PARTY))  # and for the worker processes of a local sweep


def test_a_mixer_from_another_package_passes_the_contract_the_built_in_ones_pass(on_path):
    results = list(conformance.run_checks(GOOD))
    assert results and all(r.passed for r in results), [(r.check, r.detail) for r in results if not r.passed]
    assert {r.check for r in results} >= {"reference [parallel]", "causal [recurrent]", "step", "trains", "parameters"}


def test_a_broken_mixer_fails_check_with_the_failing_property_named(on_path, capsys):
    with pytest.raises(SystemExit, match=r"fails 4 check\(s\): reference \[parallel\], modes agree \[parallel\], "
                                         r"causal \[parallel\], prefill \+ step \[parallel\]"):
        main(["check", BROKEN])
    table = capsys.readouterr().out
    assert "causal [parallel]           FAIL" in table and "causal [recurrent]          pass" in table


def test_a_sweep_names_the_mixer_by_its_path_and_trains_it_in_worker_processes(on_path, tmp_path, capsys):
    sweep = expand({"name": "byom", "seeds": [0, 1], "base": tiny_run_config(steps=6, model={"name": GOOD, "options": {"init_decay": 0.8}})})
    submission = submit(sweep, executor="local", root=tmp_path, echo=lambda line: None)
    assert submission.failed == {} and len(submission.submitted) == 2
    main(["models"])
    assert GOOD not in capsys.readouterr().out  # a path is resolved where it is named, not listed
    assert models.registry.MIXERS.origins[GOOD] == f"import path {GOOD}"


@pytest.mark.parametrize("path,message", [
    ("no_such_package.mixers:Mine", "cannot import module 'no_such_package.mixers' \\(ModuleNotFoundError.*importable "
                                    "wherever the run executes \\(on Slurm: on the nodes"),
    ("seqbench_example_mixers.decay:Missing", "has no attribute 'Missing'; its classes: DecayMixer, Mixer, PeekingMixer"),
    ("seqbench_example_mixers.decay:torch", "is a module, not a subclass of seqbench.models.base.Mixer"),
    ("seqbench.tasks.mqar:MQAR", "is a class MQAR, not a subclass of seqbench.models.base.Mixer"),
])
def test_a_bad_path_names_the_module_the_attribute_and_what_was_found(on_path, path, message):
    with pytest.raises(ValueError, match=message):
        models.build(path, d_model=8)


def test_tasks_come_by_path_too_and_must_be_tasks():
    assert tasks.TASKS.get_class("seqbench.tasks.mqar:MQAR").metrics == ("accuracy",)
    with pytest.raises(ValueError, match="is a class GateLoop, not a subclass of seqbench.tasks.base.Task"):
        tasks.TASKS.get_class("seqbench.models.gateloop:GateLoop")


def test_a_nan_gradient_fails_the_reference_check(on_path):
    """NaN compares false with every tolerance: the check must not read it as a pass."""
    import torch

    from seqbench.models.conformance import relative_error

    assert relative_error(torch.tensor([float("nan"), 1.0]), torch.tensor([1.0, 1.0])) == float("inf")


def test_a_relaunch_refuses_finished_runs_of_a_mixer_whose_source_changed(tmp_path, monkeypatch):
    """A mixer named by import path is code outside seqbench's commit: its source's sha256 is in every
    run's provenance, and once it is edited a relaunch does not count the old runs as finished without
    saying so — it refuses, naming run and mixer, unless told to accept them."""
    source = tmp_path / "edited_decay_mixer.py"  # a module of its own: no earlier test has imported (and cached) it
    source.write_text((THIRD_PARTY / "seqbench_example_mixers" / "decay.py").read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    mixer = "edited_decay_mixer:DecayMixer"
    sweep = expand({"name": "edited", "seeds": [0], "base": tiny_run_config(steps=4, model={"name": mixer, "options": {"init_decay": 0.8}})})
    submit(sweep, executor="debug", root=tmp_path / "runs", echo=lambda line: None)
    assert submit(sweep, executor="debug", root=tmp_path / "runs", echo=lambda line: None).finished  # unchanged: finished
    source.write_text(source.read_text() + "\n# an edit\n")
    with pytest.raises(ValueError, match=rf"1 finished run\(s\) were trained on code that has changed since: run {sweep.runs[0].run_id()}: "
                                         rf"{mixer} \(sha256 .*… then, .*… now\)\. Pass --accept-changed-code"):
        submit(sweep, executor="debug", root=tmp_path / "runs", echo=lambda line: None)
    accepted = submit(sweep, executor="debug", root=tmp_path / "runs", echo=lambda line: None, accept_changed_code=True)
    assert accepted.finished == [sweep.runs[0].run_id()]
