"""The gated delta rule (models/gated_deltanet/ops.py) in every mode against the float64 loop of
reference.py, which writes the rule as the paper does (S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ):
outputs, final state and the gradients of every input (the initial state's included), at odd lengths
and chunk sizes that do and do not divide them; gated and ungated (DeltaNet), β up to 2 (negative
eigenvalues); and decays strong enough to overflow a naive factorisation."""
import pytest
import torch

from seqbench.models.gated_deltanet.layer import l2_normalise
from seqbench.models.gated_deltanet.ops import MODES, delta_rule
from seqbench.models.gated_deltanet.reference import delta_rule_reference
from tests.helpers import assert_op_matches_reference, relative_error


def inputs(length, *, gated=True, beta_max=1.0, decay_scale=0.3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, length, 3, 4, generator=g, dtype=dtype)
    k = l2_normalise(torch.randn(2, length, 3, 4, generator=g, dtype=dtype))  # as the layer gives them
    v = torch.randn(2, length, 3, 5, generator=g, dtype=dtype)
    beta = torch.rand(2, length, 3, generator=g, dtype=dtype) * beta_max
    log_decay = -torch.rand(2, length, 3, generator=g, dtype=dtype) * decay_scale * gated
    state = torch.randn(2, 3, 4, 5, generator=g, dtype=dtype)
    return [q, k, v, beta, log_decay, state]



def run(mode, chunk):
    return lambda q, k, v, b, g, s: delta_rule(q, k, v, b, g, mode=mode, chunk_size=chunk, initial_state=s)


NAMES = ("q", "k", "v", "beta", "log_decay", "initial state")


@pytest.mark.parametrize("variant", [{}, {"gated": False}, {"beta_max": 2.0}], ids=["gated", "DeltaNet", "negative eigenvalues"])
@pytest.mark.parametrize("chunk", [1, 5, 16])
@pytest.mark.parametrize("length", [1, 7, 17, 33])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_matches_the_reference(mode, length, chunk, variant):
    tensors = inputs(length, **variant)
    assert_op_matches_reference(run(mode, chunk), delta_rule_reference, tensors, NAMES,
                                skip=() if variant.get("gated", True) else ("log_decay",))  # α = 1 held fixed: no claim on its gradient


def test_strong_decay_neither_overflows_nor_loses_the_recent_past():
    """log α = −60 per step: a chunk of 16 spans e^−960; the chunked form only exponentiates differences ≤ 0."""
    tensors = inputs(40, decay_scale=60.0)
    o, state = delta_rule(*(t.float() for t in tensors[:5]), mode="chunked", chunk_size=16)
    o_ref, state_ref = delta_rule_reference(*tensors[:5])
    assert torch.isfinite(o).all() and relative_error(o, o_ref) < 1e-5 and relative_error(state, state_ref) < 1e-5


def test_with_beta_two_a_repeated_key_flips_the_state():
    """β = 2, unit k, no decay: (I − 2 k kᵀ) reflects the state's k-component — the negative eigenvalue."""
    k = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)
    state = torch.tensor([[[[3.0], [5.0]]]], dtype=torch.float64)
    zero_v = torch.zeros(1, 1, 1, 1, dtype=torch.float64)
    _, after = delta_rule(k, k, zero_v, torch.full((1, 1, 1), 2.0, dtype=torch.float64), torch.zeros(1, 1, 1, dtype=torch.float64),
                          mode="recurrent", initial_state=state)
    assert after.flatten().tolist() == [-3.0, 5.0]


def test_an_unknown_mode_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown delta rule mode 'scan'; valid modes: recurrent, chunked"):
        delta_rule(*inputs(3)[:5], mode="scan")
