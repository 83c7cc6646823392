"""`seqbench check` (models/conformance.py) on mixers that break the contract in the ways a newcomer's
do: each cause reported once with the checks it stopped, the fix named; a process exit or a hang is a
failure, never a silent pass."""
import sys
import textwrap

import pytest

from seqbench.models import conformance

BROKEN = textwrap.dedent('''
    import sys
    import torch
    from torch import nn
    from seqbench.models.base import Mixer

    class NoSuper(Mixer):
        modes = ("recurrent",)
        DEFAULT_MODE = "recurrent"
        def __init__(self, *, d_model: int):
            self.d_model = d_model
        def init_state(self, batch_size, device=None, dtype=None): return None
        def state_size(self, seq_len=None): return 1
        def reference_forward(self, x): return x
        def _forward(self, x, mode): return x, None
        def _step(self, x, state): return x, state

    class Linear(NoSuper):
        def __init__(self, *, d_model: int):
            Mixer.__init__(self, d_model=d_model)
            self.proj = nn.Linear(d_model, d_model)
        def _forward(self, x, mode): return self.proj(x), None
        def _step(self, x, state): return self.proj(x), state
        def reference_forward(self, x): return self.proj.double()(x.double())

    class Exits(Linear):
        def _forward(self, x, mode): sys.exit(0)

    class Hangs(Linear):
        def _forward(self, x, mode):
            while True:
                pass

    class Detached(Linear):
        def reference_forward(self, x):
            weights = self.state_dict()
            return x.double() @ weights["proj.weight"].double().T + weights["proj.bias"].double()
    ''')


@pytest.fixture
def broken(tmp_path, monkeypatch):
    (tmp_path / "broken_mixers.py").write_text(BROKEN)
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("broken_mixers", "exits_on_import"):
        sys.modules.pop(name, None)


def test_one_cause_is_reported_once_with_the_fix_and_the_checks_it_stopped(broken):
    results = list(conformance.run_checks("broken_mixers:NoSuper"))
    assert not any(r.passed for r in results)
    text = conformance.format_results(results)
    assert text.count("has no attribute '_modules'") == 1 and "must call super().__init__(d_model=d_model)" in text
    assert "more check(s) failed with the same error as 'reference [recurrent]'" in text and "distinct error(s)" in text


def test_a_detached_reference_is_named_as_such(broken):
    reference = next(r for r in conformance.run_checks("broken_mixers:Detached") if r.check == "reference [recurrent]")
    assert not reference.passed and "state_dict(), .data and .detach() return copies" in reference.detail
    honest = next(r for r in conformance.run_checks("broken_mixers:Linear") if r.check == "reference [recurrent]")
    assert honest.passed  # the same layer with a reference that uses its parameters


def test_an_exit_in_the_mixer_or_at_import_and_a_hang_are_failures(broken):
    exits = {r.check: r for r in conformance.run_checks("broken_mixers:Exits")}
    assert not exits["reference [recurrent]"].passed and "SystemExit(0)" in exits["reference [recurrent]"].detail
    [imported] = conformance.run_checks("exits_on_import:Anything")
    assert imported.check == "import and build" and not imported.passed and "SystemExit(0)" in imported.detail
    hangs = list(conformance.run_checks("broken_mixers:Hangs", time_limit_s=1.0))
    assert not hangs[0].passed and "did not finish within 1 s" in hangs[0].detail
    # the checks after a hang are failures that name it, not another wait each (15 checks × the limit)
    assert len(hangs) > 5 and all(not r.passed and r.detail == f"not run: '{hangs[0].check}' did not finish within 1 s"
                                  for r in hangs[1:])
