"""RWKV-7's diagonal-plus-low-rank rule (models/rwkv7/ops.py) in every mode against the float64
matrix-product loop of reference.py: outputs, final state and the gradients of every input (the
initial state's included), at odd lengths and chunk sizes that do and do not divide them, with
RWKV-7's a = −κ̂, b = κ̂ ⊙ a_rate and with unrelated a, b; and decays strong enough to overflow a
naive factorisation."""
import pytest
import torch
import torch.nn.functional as F

from seqbench.models.rwkv7.ops import MODES, dplr_delta_rule
from seqbench.models.rwkv7.reference import dplr_reference
from tests.helpers import assert_op_matches_reference, relative_error


def inputs(length, *, rwkv=True, decay_scale=0.6, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (2, length, 3, 4)
    q, k = (torch.randn(*shape, generator=g, dtype=dtype) for _ in range(2))
    v = torch.randn(2, length, 3, 5, generator=g, dtype=dtype)
    if rwkv:  # the transition diag(w) − (κ̂ ⊙ a_rate) κ̂ᵀ: eigenvalues inside the unit disc
        removal = F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1)
        a, b = -removal, removal * torch.rand(*shape, generator=g, dtype=dtype)
    else:
        a, b = (0.3 * torch.randn(*shape, generator=g, dtype=dtype) for _ in range(2))
    log_decay = -torch.rand(*shape, generator=g, dtype=dtype) * decay_scale
    state = torch.randn(2, 3, 4, 5, generator=g, dtype=dtype)
    return [q, k, v, a, b, log_decay, state]



def run(mode, chunk):
    return lambda q, k, v, a, b, g, s: dplr_delta_rule(q, k, v, a, b, g, mode=mode, chunk_size=chunk, initial_state=s)


@pytest.mark.parametrize("rwkv", [True, False], ids=["RWKV-7's a, b", "any a, b"])
@pytest.mark.parametrize("chunk", [1, 5, 16])
@pytest.mark.parametrize("length", [1, 7, 17, 33])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_matches_the_reference(mode, length, chunk, rwkv):
    tensors = inputs(length, rwkv=rwkv)
    assert_op_matches_reference(run(mode, chunk), dplr_reference, tensors, ("q", "k", "v", "a", "b", "log_decay", "initial state"))


def test_strong_decay_neither_overflows_nor_loses_the_recent_past():
    """log w = −60 per step: a chunk of 16 spans e^−960; the chunked form only exponentiates differences ≤ 0."""
    tensors = inputs(40, decay_scale=60.0)
    o, state = dplr_delta_rule(*(t.float() for t in tensors[:6]), mode="chunked", chunk_size=16)
    o_ref, state_ref = dplr_reference(*tensors[:6])
    assert torch.isfinite(o).all() and relative_error(o, o_ref) < 1e-5 and relative_error(state, state_ref) < 1e-5


def test_an_unknown_mode_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown RWKV-7 rule mode 'scan'; valid modes: recurrent, chunked"):
        dplr_delta_rule(*inputs(3)[:6], mode="scan")
