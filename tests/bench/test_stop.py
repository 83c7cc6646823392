"""Stop requests (bench/stop.py): a signal is only recorded; at the next step boundary the run
checkpoints first, then exits with 128 + the signal — never mid-step."""
import signal

import pytest

from seqbench.bench.stop import Preempted, StopRequest


def test_a_signal_is_recorded_and_acted_on_only_at_the_boundary(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    request, saved = StopRequest(), []
    request.at_boundary(lambda: saved.append("checkpoint"))  # nothing pending: nothing happens
    assert saved == []
    request(signal.SIGTERM, None)  # the handler: records only
    assert saved == [] and request.pending == [signal.SIGTERM]
    with pytest.raises(Preempted) as stopped:
        request.at_boundary(lambda: saved.append("checkpoint"))
    assert saved == ["checkpoint"] and stopped.value.code == 128 + signal.SIGTERM and request.pending == []


def test_the_preemption_signal_hands_over_to_submitits_handler_after_the_checkpoint(monkeypatch):
    from seqbench.bench.stop import PREEMPT_SIGNAL

    request, events = StopRequest(), []
    request.previous[PREEMPT_SIGNAL] = lambda signum, frame: events.append(("requeue", signum))
    request(PREEMPT_SIGNAL, None)
    request.at_boundary(lambda: events.append("checkpoint"))
    assert events == ["checkpoint", ("requeue", PREEMPT_SIGNAL)]
