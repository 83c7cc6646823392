"""The gated linear-attention op (models/gla/ops.py) in every mode against the float64 loop of
reference.py: outputs, final state and the gradients of every input (the initial state's included),
at odd lengths and chunk sizes that do and do not divide them, with per-key gates (GLA) and one gate
per head (Mamba-2's SSD); and gates small enough to overflow a naive factorisation."""
import pytest
import torch

from seqbench.models.gla.ops import MODES, gated_linear_attention
from seqbench.models.gla.reference import gla_reference
from tests.helpers import assert_op_matches_reference, relative_error


def inputs(length, *, gate_width, dtype=torch.float64, seed=0, gate_scale=0.3):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(2, length, 3, 4, generator=g, dtype=dtype) for _ in range(2))
    v = torch.randn(2, length, 3, 5, generator=g, dtype=dtype)
    log_decay = -torch.rand(2, length, 3, gate_width, generator=g, dtype=dtype) * gate_scale
    state = torch.randn(2, 3, 4, 5, generator=g, dtype=dtype)
    return [q, k, v, log_decay, state]



def run(mode, chunk):
    return lambda q, k, v, g, s: gated_linear_attention(q, k, v, g, mode=mode, chunk_size=chunk, initial_state=s)


@pytest.mark.parametrize("gate_width", [4, 1], ids=["per key (GLA)", "per head (SSD)"])
@pytest.mark.parametrize("chunk", [1, 5, 16])
@pytest.mark.parametrize("length", [1, 7, 17, 33])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_matches_the_reference(mode, length, chunk, gate_width):
    tensors = inputs(length, gate_width=gate_width)
    assert_op_matches_reference(run(mode, chunk), gla_reference, tensors, ("q", "k", "v", "log_decay", "initial state"))


def test_gates_far_below_one_neither_overflow_nor_lose_the_recent_past():
    """log α = −60 per step: a chunk of 16 spans e^−960, beyond float32's range were it factored as
    e^G_t · e^−G_s; the chunked mode only ever exponentiates differences ≤ 0."""
    tensors = inputs(40, gate_width=4, gate_scale=60.0)
    o, state = gated_linear_attention(*(t.float() for t in tensors[:4]), mode="chunked", chunk_size=16)
    o_ref, state_ref = gla_reference(*tensors[:4])
    assert torch.isfinite(o).all() and relative_error(o, o_ref) < 1e-5 and relative_error(state, state_ref) < 1e-5


def test_an_unknown_mode_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown gated linear attention mode 'scan'; valid modes: recurrent, chunked"):
        gated_linear_attention(*inputs(3, gate_width=4)[:4], mode="scan")
