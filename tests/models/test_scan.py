"""The first-order linear recurrence (models/scan.py): every method against a float64 loop at odd
lengths, complex and real, with an initial state; bad input refused."""
import pytest
import torch

from seqbench.models.scan import METHODS, linear_recurrence


def loop(a, b, h0):
    states, h = [], h0
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, 1)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("length", [1, 2, 7, 33])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_every_method_is_the_recurrence_written_as_a_loop(method, length, dtype):
    g = torch.Generator().manual_seed(length)
    a = torch.rand(2, length, 5, generator=g, dtype=torch.float64) * 0.9
    b = torch.randn(2, length, 5, generator=g, dtype=torch.float64)
    if dtype.is_complex:
        a = torch.polar(a, torch.rand(2, length, 5, generator=g, dtype=torch.float64) * 6)
        b = b.to(dtype)
    h0 = torch.randn(2, 5, generator=g, dtype=torch.float64).to(dtype)
    assert torch.allclose(linear_recurrence(a, b, h0, method=method), loop(a, b, h0), atol=1e-12)


def test_a_broadcast_decay_and_bad_input():
    b = torch.randn(1, 9, 3, dtype=torch.float64)
    a = torch.full((1, 9, 1), 0.5, dtype=torch.float64)
    assert torch.allclose(linear_recurrence(a, b, method="doubling"), loop(a.expand_as(b), b, torch.zeros(1, 3, dtype=torch.float64)))
    with pytest.raises(ValueError, match="unknown recurrence method 'fast'; valid methods: sequential, doubling, odd_even"):
        linear_recurrence(a, b, method="fast")
    with pytest.raises(ValueError, match="length ≥ 1"):
        linear_recurrence(a[:, :0], b[:, :0])
