"""What every task shares (tasks/base.py): split streams fixed by (task, split, seed) and distinct
between splits, bad splits named, and per-slice accuracy counted over scored positions only."""
import pytest
import torch

from seqbench.tasks.base import IGNORE, SliceAccuracy, check_split, split_generator


def test_a_split_stream_is_fixed_by_task_split_and_seed_and_differs_otherwise():
    draw = lambda *key: torch.randint(0, 1000, (8,), generator=split_generator(*key))  # noqa: E731
    assert torch.equal(draw("mqar", "train", 3), draw("mqar", "train", 3))
    assert not torch.equal(draw("mqar", "train", 3), draw("mqar", "validation", 3))
    assert not torch.equal(draw("mqar", "train", 3), draw("mqar", "train", 4))
    assert not torch.equal(draw("mqar", "train", 3), draw("parity", "train", 3))
    with pytest.raises(ValueError, match="unknown split 'dev'; valid splits: train, validation, test"):
        check_split("dev")


def test_slice_accuracy_counts_scored_positions_per_slice():
    logits = torch.zeros(2, 4, 3)
    logits[..., 1] = 1.0  # always predicts 1
    targets = torch.tensor([[1, 1, IGNORE, 2], [2, IGNORE, IGNORE, IGNORE]])
    late = torch.tensor([[False, False, True, True], [False, False, True, True]])
    class Late(SliceAccuracy):  # a task's evaluation names its slices in update
        def update(self, logits, inputs, targets):
            self.update_with_slices(logits, targets, {"late": late, "never": torch.zeros_like(late)})

    evaluation = Late()
    evaluation.update(logits, None, targets)
    result = evaluation.result()
    assert result["accuracy"] == pytest.approx((2 / 3 + 0 / 1) / 2)  # mean over sequences of their accuracy
    assert result["accuracy/late"] == 0.0 and "accuracy/never" not in result  # a slice with nothing scored is absent
