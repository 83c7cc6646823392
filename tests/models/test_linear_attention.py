"""Linear attention's ops (models/linear_attention.py): the chunked form at several chunk sizes and
the recurrence equal the written-out causal sum Σ_{m≤n} φ(q_n)·φ(k_m) v_m / Σ_{m≤n} φ(q_n)·φ(k_m),
outputs and final state, at odd lengths; the layer's modes agree."""
import pytest
import torch

from seqbench import models
from seqbench.models.linear_attention import (
    feature_map,
    linear_attention_chunked,
    linear_attention_parallel,
    linear_attention_recurrent,
)


def inputs(length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [feature_map(torch.randn(2, length, 3, 4, generator=g, dtype=torch.float64)) for _ in range(2)] + \
        [torch.randn(2, length, 3, 5, generator=g, dtype=torch.float64)]


def written_out(q, k, v):
    out = torch.zeros(*q.shape[:3], v.shape[-1], dtype=torch.float64)
    for n in range(q.shape[1]):
        weights = torch.einsum("bhd,bmhd->bhm", q[:, n], k[:, : n + 1])
        out[:, n] = torch.einsum("bhm,bmhv->bhv", weights, v[:, : n + 1]) / weights.sum(-1, keepdim=True)
    return out


@pytest.mark.parametrize("length", [1, 7, 33])
@pytest.mark.parametrize("chunk_size", [1, 4, 16, 64])
def test_chunked_and_recurrent_forms_are_the_causal_sum(length, chunk_size):
    q, k, v = inputs(length)
    expected = written_out(q, k, v)
    empty = (torch.zeros(2, 3, 4, 5, dtype=torch.float64), torch.zeros(2, 3, 4, dtype=torch.float64))
    chunked, (kv, normaliser) = linear_attention_chunked(q, k, v, empty, chunk_size)
    recurrent, (kv_r, normaliser_r) = linear_attention_recurrent(q, k, v, empty)
    assert torch.allclose(chunked, expected, atol=1e-10) and torch.allclose(recurrent, expected, atol=1e-10)
    assert torch.allclose(linear_attention_parallel(q, k, v), expected, atol=1e-10)
    assert torch.allclose(kv, torch.einsum("bnhd,bnhv->bhdv", k, v)) and torch.allclose(kv, kv_r)
    assert torch.allclose(normaliser, k.sum(1)) and torch.allclose(normaliser, normaliser_r)


def test_a_state_carried_between_calls_continues_the_sum():
    q, k, v = inputs(12, seed=1)
    empty = (torch.zeros(2, 3, 4, 5, dtype=torch.float64), torch.zeros(2, 3, 4, dtype=torch.float64))
    first, state = linear_attention_chunked(q[:, :5], k[:, :5], v[:, :5], empty, 4)
    second, _ = linear_attention_chunked(q[:, 5:], k[:, 5:], v[:, 5:], state, 4)
    assert torch.allclose(torch.cat([first, second], 1), written_out(q, k, v), atol=1e-10)


def test_the_layers_modes_compute_one_function():
    torch.manual_seed(0)
    layer = models.build("linear_attention", d_model=16, heads=2, chunk_size=5).double()
    x = torch.randn(2, 13, 16, dtype=torch.float64)
    reference = layer.reference_forward(x)
    for mode in ("parallel", "recurrent", "chunked"):
        assert torch.allclose(layer(x, mode=mode), reference, atol=1e-10), mode
