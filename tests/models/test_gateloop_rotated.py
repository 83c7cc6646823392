"""The rotated, real-arithmetic chunked form (rotated.py) against the float64 reference: outputs,
final state (with an initial state), every gradient, at odd lengths and chunk sizes; and the layer's
chunked mode on it, across the transition options, handing its state to `step`."""
import itertools
import math

import pytest
import torch

from seqbench import models
from seqbench.models.gateloop import rotated
from seqbench.models.gateloop.reference import gateloop_reference
from seqbench.models.gateloop.rotated import gateloop_rotated_chunked
from tests.helpers import relative_error


def op_inputs(length, heads=3, dk=4, dv=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(2, length, heads, dk, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, length, heads, dv, generator=g, dtype=torch.float64)
    log_r = torch.log(torch.rand(2, length, heads, generator=g, dtype=torch.float64) * 0.5 + 0.5)
    theta = torch.randn(2, length, heads, generator=g, dtype=torch.float64) * 2
    h0 = torch.randn(2, heads, dk, dv, generator=g, dtype=torch.complex128)
    return q, k, v, log_r, theta, h0


@pytest.fixture(params=["factored", "difference"])
def intra_chunk_form(request, monkeypatch):
    """Both forms of the causal product: e^{g_n}·e^{−g_m} inside one matmul, or e^{g_n − g_m} cos(Θ_n − Θ_m)."""
    span = math.inf if request.param == "factored" else 0.0
    monkeypatch.setattr(rotated, "FACTORED_LOG_SPAN", {torch.float32: span, torch.float64: span})
    return request.param


@pytest.fixture(params=["one tile", "many tiles"])
def tiling(request, monkeypatch):
    """Many tiles: one sequence and one chunk at a time, so states cross tile borders in both directions."""
    if request.param == "many tiles":
        monkeypatch.setattr(rotated, "TILE_ELEMENTS", 1)
    return request.param


@pytest.mark.parametrize("chunk_size", [1, 5, 16, 64])
@pytest.mark.parametrize("length", [1, 17, 64, 65])
def test_rotated_chunked_equals_the_reference_with_state_and_gradients(length, chunk_size, intra_chunk_form, tiling):
    tensors = [t.requires_grad_(True) for t in op_inputs(length)]
    q, k, v, log_r, theta, h0 = tensors
    y, h = gateloop_rotated_chunked(q, k, v, log_r, theta, h0, chunk_size=chunk_size)
    a = torch.polar(log_r.exp(), theta).unsqueeze(-1).expand_as(q)
    y_ref, h_ref = gateloop_reference(q, k, v, a, h0)
    assert relative_error(y, y_ref) < 1e-12 and relative_error(h, h_ref) < 1e-12
    g = torch.Generator().manual_seed(5)
    wy, wh = torch.randn(y.shape, generator=g, dtype=torch.float64), torch.randn(h.shape, generator=g, dtype=torch.complex128)
    grads = torch.autograd.grad((y * wy).sum() + (h * wh).real.sum(), tensors)
    grads_ref = torch.autograd.grad((y_ref * wy).sum() + (h_ref * wh).real.sum(), tensors)
    for name, grad, expected in zip(("q", "k", "v", "log_r", "theta", "h0"), grads, grads_ref):
        assert relative_error(grad, expected) < 1e-10, name


def test_strong_decay_switches_a_tile_to_the_difference_form_and_stays_exact(monkeypatch):
    """log r = −30 over part of one sequence: those chunks span |g| > FACTORED_LOG_SPAN (e^{−g} would
    overflow in float32), so their tiles take the difference form and the others stay factored;
    float32 outputs, state and gradients agree with the float64 reference."""
    monkeypatch.setattr(rotated, "TILE_ELEMENTS", 1)
    forms, scores = [], rotated._Run.scores

    def recording_scores(run):
        forms.append(run.factored)
        return scores(run)

    monkeypatch.setattr(rotated._Run, "scores", recording_scores)
    q, k, v, log_r, theta, h0 = op_inputs(40)
    log_r = log_r.clone()
    log_r[1, 3:30] = -30.0
    exact = [t.clone().requires_grad_(True) for t in (q, k, v, log_r, theta)]
    single = [t.detach().float().requires_grad_(True) for t in exact]
    y, h = gateloop_rotated_chunked(*single, h0.to(torch.complex64), chunk_size=16)
    a = torch.polar(exact[3].exp(), exact[4]).unsqueeze(-1).expand_as(q)
    y_ref, h_ref = gateloop_reference(*exact[:3], a, h0)
    assert relative_error(y, y_ref) < 1e-5 and relative_error(h, h_ref) < 1e-5
    assert True in forms and False in forms
    g = torch.Generator().manual_seed(5)
    wy, wh = torch.randn(y.shape, generator=g, dtype=torch.float64), torch.randn(h.shape, generator=g, dtype=torch.complex128)
    grads = torch.autograd.grad((y * wy.float()).sum() + (h * wh.to(torch.complex64)).real.sum(), single)
    grads_ref = torch.autograd.grad((y_ref * wy).sum() + (h_ref * wh).real.sum(), exact)
    for name, grad, expected in zip(("q", "k", "v", "log_r", "theta"), grads, grads_ref):
        assert relative_error(grad, expected) < 1e-4, name


def test_phase_is_exact_over_long_sequences():
    """Θ grows with L; summed in float64 and wrapped, float32 keeps its accuracy at L = 4096."""
    q, k, v, log_r, theta, _ = op_inputs(4096, heads=2, dk=2, dv=2)
    y, _ = gateloop_rotated_chunked(*(t.float() for t in (q, k, v, log_r, theta)), chunk_size=64)
    y_ref, _ = gateloop_reference(q, k, v, torch.polar(log_r.exp(), theta).unsqueeze(-1).expand_as(q))
    assert relative_error(y, y_ref) < 1e-5


TRANSITIONS = [(*combo, {}) for combo in itertools.product(["data", "fixed", "none"], [True, False],
                                                            ["sigmoid_of_modulus", "magnitude_and_phase"])]
TRANSITIONS += [("data", False, "sigmoid_of_modulus", {"real_transition_sign": True}),  # phase 0 or π
                ("data", True, "sigmoid_of_modulus", {"state_operator": "real_part"}),
                ("fixed", True, "magnitude_and_phase", {"state_operator": "real_part"})]


@pytest.mark.parametrize("state_transition,complex_transition,parameterisation,extra", TRANSITIONS)
def test_layer_chunked_mode_matches_the_float64_reference_and_hands_its_state_to_step(state_transition, complex_transition,
                                                                                      parameterisation, extra):
    torch.manual_seed(0)
    layer = models.build("gateloop", d_model=16, heads=2, chunk_size=5, short_conv=3, state_transition=state_transition,
                         complex_transition=complex_transition, transition_parameterisation=parameterisation, **extra).double()
    x = torch.randn(2, 23, 16, dtype=torch.float64, requires_grad=True)
    y = layer(x, mode="chunked")
    y_ref = layer.reference_forward(x)
    assert relative_error(y, y_ref) < 1e-12
    grads = torch.autograd.grad(y.pow(2).sum(), [x, *layer.parameters()])
    grads_ref = torch.autograd.grad(y_ref.pow(2).sum(), [x, *layer.parameters()])
    assert all(relative_error(a, b) < 1e-9 for a, b in zip(grads, grads_ref))
    prefix, state = layer(x[:, :20].detach(), mode="chunked", return_state=True)
    for t in range(20, 23):
        y_t, state = layer.step(x[:, t].detach(), state)
        assert relative_error(y_t, y_ref[:, t].detach()) < 1e-12


def test_default_mode_is_chunked_only_for_large_matrix_states():
    assert models.build("gateloop", d_model=128).default_mode == "recurrent"  # max heads
    assert models.build("gateloop", d_model=128, heads=4).default_mode == "recurrent"  # head_dim 32
    assert models.build("gateloop", d_model=128, heads=2).default_mode == "recurrent"  # head_dim 64
    assert models.build("gateloop", d_model=128, heads=1).default_mode == "chunked"  # head_dim 128
