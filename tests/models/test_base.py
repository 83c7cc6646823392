"""The Mixer base (models/base.py): every input problem is refused before any computation, the
message naming the mixer, the expected shape and what was given."""
import pytest
import torch

from seqbench import models


@pytest.mark.parametrize("bad, error, message", [
    (torch.zeros(2, 5, 8), ValueError, "gla: expected input of shape \\(batch, length, d_model\\) with d_model=16, got \\(2, 5, 8\\)"),
    (torch.zeros(2, 0, 16), ValueError, "gla: the sequence is empty \\(length 0\\)"),
    (torch.zeros(2, 5, 16, dtype=torch.long), TypeError, "gla: expected a floating-point input, got torch.int64"),
    ([[0.0] * 16], TypeError, "gla: expected a tensor of shape \\(batch, length, d_model\\), got list"),
])
def test_bad_inputs_are_refused_saying_what_was_expected(bad, error, message):
    mixer = models.build("gla", d_model=16)
    with pytest.raises(error, match=message):
        mixer(bad)


def test_no_mode_means_the_default_mode():
    torch.manual_seed(0)
    mixer = models.build("gla", d_model=16).double()
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    assert torch.equal(mixer(x), mixer(x, mode=mixer.default_mode))
