"""A checkpoint's checks (bench/checkpoint.py): the format, the run and every field, before any
weight is loaded."""
import pytest

from seqbench.bench.checkpoint import CHECKPOINT_FORMAT, check_checkpoint

GOOD = {"format": CHECKPOINT_FORMAT, "run_id": "0123456789abcdef", "step": 40, "stopped_early": False, "resumed_from": [],
        "model": {}, "optimizer": {}, "scheduler": {}}


def test_a_complete_checkpoint_of_this_run_passes():
    check_checkpoint(GOOD, "0123456789abcdef")


@pytest.mark.parametrize("change, message", [
    ({"run_id": "ffffffffffffffff"}, "checkpoint of run 'ffffffffffffffff', not '0123456789abcdef'"),
    ({"format": CHECKPOINT_FORMAT - 1}, f"checkpoint format {CHECKPOINT_FORMAT - 1}, expected {CHECKPOINT_FORMAT}"),
    ({"step": -1}, "negative step -1"),
    ({"model": None, "step": "4"}, "fields missing or of the wrong type: step, model"),
])
def test_anything_else_is_refused_saying_what(change, message):
    with pytest.raises(ValueError, match=message):
        check_checkpoint({**GOOD, **change}, "0123456789abcdef")
    with pytest.raises(ValueError, match="a checkpoint is a dict, found list"):
        check_checkpoint([], "0123456789abcdef")
