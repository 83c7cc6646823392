"""S5 (models/s5.py): its relation to GateLoop, its initialisations, its B and C, its output."""
import pytest
import torch

from seqbench import models
from seqbench.models.gateloop.ops import gateloop
from seqbench.models.s5 import hippo_n
from tests.helpers import relative_error


def test_s5_is_gateloop_with_a_fixed_transition():
    """With real B̄ and C̃, S5's output equals the GateLoop op with a_n = Λ̄ for all n (an LTI GateLoop).

    Per output channel o (a GateLoop head): q_n = C̃[o, :], k_n = B̄ u_n, v_n = 1, a_n = Λ̄.
    """
    torch.manual_seed(0)
    d_model, states, length = 5, 7, 40
    s5 = models.build("s5", d_model=d_model, state_dim=states, activation="none").double()  # the linear SSM itself
    with torch.no_grad():  # choose B̃ so that B̄ = (Λ̄ − 1)/Λ · B̃ is a real matrix R; make C̃ real; D = 0
        lam_bar, _, _ = s5.discretised(torch.float64)
        lam = torch.complex(-s5.log_neg_lambda_real.exp(), s5.lambda_imag)
        real_b = torch.randn(states, d_model, dtype=torch.float64)
        s5.input_matrix.copy_(torch.view_as_real((lam / (lam_bar - 1)).unsqueeze(-1) * real_b))
        s5.output_matrix[..., 1] = 0
        s5.skip.zero_()
    u = torch.randn(2, length, d_model, dtype=torch.float64)
    lam_bar, b_bar, c_tilde = s5.discretised(torch.float64)
    assert b_bar.imag.abs().max() < 1e-12

    q = c_tilde.real.expand(2, length, d_model, states)  # heads = output channels, dk = states
    k = (u @ b_bar.real.T).unsqueeze(2).expand(2, length, d_model, states)
    v = torch.ones(2, length, d_model, 1, dtype=torch.float64)
    a = lam_bar.expand(2, length, d_model, states)
    for mode in ("recurrent", "scan", "attention", "chunked_per_channel"):  # a transition per state: per channel
        y, _ = gateloop(q, k, v, a, mode=mode, chunk_size=8)
        assert relative_error(y[..., 0], s5(u)) < 1e-10, mode


def test_s5_ring_init_and_hippo_init():
    hippo = models.build("s5", d_model=8, state_dim=8, init="hippo")
    ring = models.build("s5", d_model=8, state_dim=8, init="ring", bc_init="direct")
    assert torch.allclose(hippo.log_neg_lambda_real.exp(), torch.full((8,), 0.5))
    radius = (-ring.log_neg_lambda_real.exp()).exp()  # |λ̄| at unit step
    assert ((radius >= 0.9 - 1e-6) & (radius <= 0.999 + 1e-6)).all()
    with pytest.raises(ValueError, match="unknown init 'legt'; valid: hippo, ring"):
        models.build("s5", d_model=8, init="legt")
    with pytest.raises(ValueError, match="bc_init='eigenvectors' needs init='hippo'"):
        models.build("s5", d_model=8, init="ring")


def test_s5_b_and_c_are_real_matrices_seen_in_hippo_ns_eigenbasis():
    """B̃ = V⁻¹B and C̃ = CV: mapped back with V, both are real (the paper's initialisation)."""
    torch.manual_seed(0)
    layer = models.build("s5", d_model=6, state_dim=10)
    _, eigenvectors = torch.linalg.eig(hippo_n(10))
    b_tilde = torch.view_as_complex(layer.input_matrix.double().contiguous())
    c_tilde = torch.view_as_complex(layer.output_matrix.double().contiguous())
    assert (eigenvectors @ b_tilde).imag.abs().max() < 1e-5 and (c_tilde @ torch.linalg.inv(eigenvectors)).imag.abs().max() < 1e-5
    direct = models.build("s5", d_model=6, state_dim=10, bc_init="direct")
    assert (eigenvectors @ torch.view_as_complex(direct.input_matrix.double().contiguous())).imag.abs().max() > 1e-2


def test_s5_output_nonlinearity_is_the_reference_layers():
    """half_glu1 (the reference's default): z = GELU(y), out = z ⊙ σ(W z + b); 'none' leaves y linear in the input."""
    torch.manual_seed(0)
    gated = models.build("s5", d_model=8, state_dim=4).double()
    linear = models.build("s5", d_model=8, state_dim=4, activation="none").double()
    linear.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("gate")})
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    y = linear(x)
    z = torch.nn.functional.gelu(y)
    assert relative_error(gated(x), z * torch.sigmoid(gated.gate(z))) < 1e-12
    assert relative_error(linear(2 * x), 2 * y) < 1e-12
