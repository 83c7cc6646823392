"""GateLoop's ablation options: each changes what it says and keeps every mode equal."""
import itertools

import pytest
import torch

from seqbench import models
from seqbench.models.gateloop import compiled
from seqbench.models.gateloop.layer import GateLoop
from tests.helpers import relative_error


def transition(layer, x):
    return layer._transition(x)


ABLATIONS = {
    "state_transition": ["data", "fixed", "none"],
    "complex_transition": [True, False],
    "transition_parameterisation": ["sigmoid_of_modulus", "magnitude_and_phase"],
    "state_operator": ["complex", "real_part"],
    "output_gate": [True, False],
    "sub_layernorm": [True, False],
}


@pytest.mark.parametrize("combo", list(itertools.product(*ABLATIONS.values())))
def test_every_ablation_combination_keeps_modes_equal(combo):
    options = dict(zip(ABLATIONS, combo))
    torch.manual_seed(0)
    layer = models.build("gateloop", d_model=12, heads=6, chunk_size=4, **options).double()
    x = torch.randn(2, 13, 12, dtype=torch.float64)
    reference = layer(x, mode="recurrent")
    for mode in layer.modes:
        assert relative_error(layer(x, mode=mode), reference) < 1e-10


def test_default_is_max_heads_with_scalar_states():
    layer = models.build("gateloop", d_model=32)
    assert layer.heads == 32 and layer.head_dim == 1
    assert layer.state_size() == 2 * 32  # one complex number per channel


def test_head_dim_gives_matrix_state():
    layer = models.build("gateloop", d_model=32, heads=4)
    assert layer.head_dim == 8 and layer.state_size() == 2 * 4 * 8 * 8


def test_transition_kinds():
    x = torch.randn(3, 5, 8)
    data = models.build("gateloop", d_model=8)
    fixed = models.build("gateloop", d_model=8, state_transition="fixed")
    none = models.build("gateloop", d_model=8, state_transition="none")
    real = models.build("gateloop", d_model=8, complex_transition=False)
    a_data, a_fixed = transition(data, x), transition(fixed, x)
    assert a_data.std(dim=(0, 1)).max() > 0.01  # depends on the input
    assert torch.equal(a_fixed, a_fixed[:1, :1].expand_as(a_fixed))  # input-independent
    assert torch.equal(transition(none, x), torch.ones_like(a_data))
    assert (transition(real, x).imag == 0).all()
    # the re-implementation's parameterisation forces |a| ≥ 0.5; the separate one does not
    assert a_data.abs().min() >= 0.5
    separate = models.build("gateloop", d_model=8, transition_parameterisation="magnitude_and_phase")
    with torch.no_grad():
        separate.to_transition.bias.fill_(-5.0)
    assert transition(separate, x).abs().min() < 0.5


def test_joint_kv_projection_has_fewer_parameters_and_needs_max_heads():
    separate = models.build("gateloop", d_model=16)
    joint = models.build("gateloop", d_model=16, kv_projection="joint")
    assert sum(p.numel() for p in joint.parameters()) == sum(p.numel() for p in separate.parameters()) - 16 * 16
    with pytest.raises(ValueError, match="kv_projection='joint'.*needs max heads"):
        models.build("gateloop", d_model=16, heads=4, kv_projection="joint")


def test_short_conv_is_causal_depthwise_and_carries_its_window_in_the_state():
    torch.manual_seed(0)
    layer = models.build("gateloop", d_model=8, heads=2, short_conv=4).double()
    assert layer.qkv_conv.weight.shape == (24, 1, 4)  # one 4-tap filter per q, k and v channel
    assert layer.state_size() == 2 * 2 * 4 * 4 + 3 * 24  # complex 4×4 state per head + 3 past projections
    state, window = layer.init_state(3, dtype=torch.float64)
    assert window.shape == (3, 3, 24) and not window.any()
    x = torch.randn(3, 9, 8, dtype=torch.float64)
    _, (_, window) = layer(x, return_state=True)
    assert torch.allclose(window, layer.to_qkv(x[:, -3:]), rtol=0, atol=1e-12)


def test_transition_grad_scale_scales_only_the_transition_gradient():
    torch.manual_seed(0)
    full = models.build("gateloop", d_model=8, transition_grad_scale=1.0).double()
    slow = models.build("gateloop", d_model=8, transition_grad_scale=0.5).double()
    slow.load_state_dict(full.state_dict())
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    full(x).sum().backward()
    slow(x).sum().backward()
    assert torch.allclose(slow(x), full(x))
    assert torch.allclose(slow.to_transition.weight.grad, 0.5 * full.to_transition.weight.grad)
    assert torch.allclose(slow.to_qkv.weight.grad, full.to_qkv.weight.grad)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"heads": 5}, "heads must be a positive divisor of d_inner=16"),
        ({"state_transition": "learned"}, "unknown state_transition 'learned'; valid: data, fixed, none"),
        ({"transition_parameterisation": "tanh"}, "valid: sigmoid_of_modulus, magnitude_and_phase"),
        ({"kv_projection": "tied"}, "valid: separate, joint"),
        ({"transition_grad_scale": 0.0}, "transition_grad_scale must lie in"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer"),
        ({"short_conv": -1}, r"short_conv is a kernel size \(0: no convolution\), got -1"),
        ({"short_conv": True}, "short_conv is a kernel size"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        GateLoop(d_model=16, **options)


@pytest.mark.parametrize("backend", ["cpp", "torch"])  # the compiled one-pass transition and the PyTorch one
def test_transition_without_angle_equals_the_polar_form_with_gradients(backend):
    """σ(|z|)·z/|z| is the re-implementation's polar(σ(|z|), ∠z); at z = 0 both give a = ½."""
    if backend == "cpp" and not compiled.available()[0]:
        pytest.skip(f"the compiled CPU path did not build here: {compiled.available()[1]}")
    layer = GateLoop(d_model=8, heads=8, backend=backend).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    logits = layer.to_transition(x).unflatten(-1, (8, -1))
    z = torch.complex(*logits.unbind(-1))
    expected = torch.polar(torch.sigmoid(z.abs()), torch.angle(z))
    a = layer._transition(x)[..., 0]
    assert relative_error(a, expected) < 1e-14
    grad, = torch.autograd.grad(torch.view_as_real(a).sum(), x)
    expected_grad, = torch.autograd.grad(torch.view_as_real(expected).sum() * layer.transition_grad_scale, x)
    assert relative_error(grad, expected_grad) < 1e-12
    with torch.no_grad():
        layer.to_transition.weight.zero_()
        layer.to_transition.bias.zero_()
    assert torch.equal(layer._transition(x), torch.full((3, 5, 8, 1), 0.5 + 0j, dtype=torch.complex128))


def test_signed_real_transition_is_the_reimplementations_sign_of_x_times_sigmoid_of_abs_x():
    torch.manual_seed(0)
    layer = models.build("gateloop", d_model=8, complex_transition=False, real_transition_sign=True).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    logit = layer.to_transition(x)  # one real logit per head
    expected = torch.sign(logit) * torch.sigmoid(logit.abs())
    a = layer._transition(x)[..., 0]
    assert (a.imag == 0).all() and torch.allclose(a.real, expected, atol=1e-15)
    assert (a.real < 0).any() and (a.real.abs() >= 0.5).all()  # phase π where x < 0; |a| ≥ ½ as before
    unsigned = models.build("gateloop", d_model=8, complex_transition=False).double()
    unsigned.load_state_dict(layer.state_dict())
    assert torch.allclose(unsigned._transition(x)[..., 0].real, a.real.abs())
    for bad in ({"complex_transition": True}, {"complex_transition": False, "transition_parameterisation": "magnitude_and_phase"}):
        with pytest.raises(ValueError, match="real_transition_sign"):
            models.build("gateloop", d_model=8, real_transition_sign=True, **bad)


def real_part_recurrence(q, k, v, a_complex):
    """h_n = Re(a_n)·h_{n-1} + k_nᵀ v_n with a real state; y_n = q_n h_n — written out in float64."""
    batch, length, heads, dk = q.shape
    h = torch.zeros(batch, heads, dk, v.shape[-1], dtype=torch.float64)
    outputs = []
    for t in range(length):
        h = a_complex[:, t].real[..., None] * h + k[:, t, ..., None] * v[:, t, :, None, :]
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], h))
    return torch.stack(outputs, 1)


@pytest.mark.parametrize("heads,length,chunk_size", [(16, 13, 4), (2, 23, 5), (4, 17, 16)])
def test_real_part_operator_matches_the_written_out_real_state_recurrence(heads, length, chunk_size):
    """The re-implementation before its update 12: Re(a) of the complex transition updates a real state."""
    torch.manual_seed(0)
    layer = models.build("gateloop", d_model=16, heads=heads, chunk_size=chunk_size, state_operator="real_part").double()
    twin = models.build("gateloop", d_model=16, heads=heads).double()  # same weights, the complex operator
    twin.load_state_dict(layer.state_dict())
    twin.to_transition = layer.to_transition  # shared, so the expected gradients reach the layer's parameters
    x = torch.randn(2, length, 16, dtype=torch.float64, requires_grad=True)
    q, k, v, _ = layer._qkv(x)
    expected = layer._output(real_part_recurrence(q, k, v, twin._transition(x)), x)
    expected_grads = torch.autograd.grad(expected.pow(2).sum(), [x, *layer.parameters()])
    for mode in layer.modes:
        y = layer(x, mode=mode)
        assert relative_error(y, expected) < 1e-12, mode
        grads = torch.autograd.grad(y.pow(2).sum(), [x, *layer.parameters()])
        assert all(relative_error(g, e) < 1e-9 for g, e in zip(grads, expected_grads)), mode
    prefix, state = layer(x[:, : length - 3].detach(), mode="chunked", return_state=True)  # decoding hand-off
    for t in range(length - 3, length):
        y_t, state = layer.step(x[:, t].detach(), state)
        assert relative_error(y_t, expected[:, t].detach()) < 1e-12
    assert relative_error(layer(x, mode="recurrent"), twin(x, mode="recurrent")) > 1e-3  # the operator matters
