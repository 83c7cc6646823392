"""Rotary positions (models/rotary.py): a rotation keeps each vector's norm, and q·k depends on the
positions only through their difference — what lets RetNet and attention see relative positions."""
import pytest
import torch

from seqbench.models.rotary import check_heads, rotate


def test_rotation_keeps_norms_and_makes_scores_relative():
    g = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, 1, 1, 8, generator=g, dtype=torch.float64) for _ in range(2))
    at = lambda x, p: rotate(x, torch.tensor([p]))  # noqa: E731
    assert torch.allclose(at(q, 5).norm(), q.norm())
    score = lambda m, n: (at(q, m) * at(k, n)).sum()  # noqa: E731
    assert torch.allclose(score(7, 3), score(104, 100)) and not torch.allclose(score(7, 3), score(7, 4))
    assert torch.equal(rotate(q, torch.tensor([0])), q)


def test_heads_must_divide_the_width_and_rotary_needs_an_even_head_dim():
    assert check_heads("retnet", 64, 4, even_head_dim=True) == 16
    with pytest.raises(ValueError, match="heads must be a positive divisor of d_model=64, got 3"):
        check_heads("retnet", 64, 3, even_head_dim=True)
    with pytest.raises(ValueError, match="even head dim; d_model/heads = 3"):
        check_heads("retnet", 6, 2, even_head_dim=True)
