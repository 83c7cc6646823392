"""Softmax attention (models/softmax_attention.py): its KV-cache state size."""
import pytest

from seqbench import models


def test_softmax_attention_state_size_needs_a_length():
    layer = models.build("softmax_attention", d_model=16)
    assert layer.state_size(seq_len=10) == 2 * 16 * 10
    with pytest.raises(ValueError, match="pass seq_len"):
        layer.state_size()
