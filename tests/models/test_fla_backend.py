"""backend="fla": the adapters around flash-linear-attention's chunk_simple_gla, run on CPU with a
pure-PyTorch function of the kernel's signature in its place (the kernel itself needs CUDA)."""
import types

import pytest
import torch

from seqbench import models
from seqbench.models import fla_backend
from seqbench.models.backends import try_import
from tests.helpers import relative_error


def chunk_simple_gla_in_pytorch(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None, output_final_state=False,
                                **unused):
    """fla's documented contract, written as the recurrence: S_n = e^{g_n} S_{n−1} + k_nᵀ v_n, o_n = scale · q_n S_n."""
    assert not unused, unused
    batch, length, heads, dk = q.shape
    scale = dk ** -0.5 if scale is None else scale
    state = q.new_zeros(batch, heads, dk, v.shape[-1]) if initial_state is None else initial_state
    outputs = []
    for t in range(length):
        log_decay = g[:, t] if g is not None else g_gamma.expand(batch, heads) if g_gamma is not None else q.new_zeros(batch, heads)
        state = log_decay.exp()[..., None, None] * state + k[:, t, ..., None] * v[:, t, :, None, :]
        outputs.append(scale * torch.einsum("bhk,bhkv->bhv", q[:, t], state))
    return torch.stack(outputs, 1), state if output_final_state else None


@pytest.fixture
def fake_fla(monkeypatch):
    calls = []

    def require(module, *, backend, on_device):
        assert (module, backend) == ("fla.ops.simple_gla", "fla")
        calls.append(on_device)
        return types.SimpleNamespace(chunk_simple_gla=chunk_simple_gla_in_pytorch)

    monkeypatch.setattr(fla_backend, "require", require)
    return calls


CASES = [("gateloop", {"heads": 2}), ("gateloop", {"heads": 16}), ("gateloop", {"heads": 2, "state_operator": "real_part"}),
         ("gateloop", {"heads": 4, "complex_transition": False, "real_transition_sign": True}),
         ("retnet", {"heads": 2}), ("linear_attention", {"heads": 2})]


@pytest.mark.parametrize("name,options", CASES)
@pytest.mark.parametrize("length", [1, 13, 70])
def test_fla_adapter_equals_the_pytorch_chunked_mode_outputs_state_and_gradients(fake_fla, name, options, length):
    assert_adapter_equals_pytorch(name, options, length, backend="fla")
    assert fake_fla


def assert_adapter_equals_pytorch(name, options, length, *, backend):
    """The layer with `backend` against the same weights on the PyTorch chunked mode, in float64:
    outputs, final state, every gradient; and decoding continues from the kernel's state."""
    torch.manual_seed(0)
    fast = models.build(name, d_model=16, backend=backend, chunk_size=8, **options).double()
    pure = models.build(name, d_model=16, chunk_size=8, **options).double()
    pure.load_state_dict(fast.state_dict())
    assert fast.default_mode == "chunked" and fast.backend_used("chunked") == backend and fast.backend_used("recurrent") == "torch"
    x = torch.randn(2, length, 16, dtype=torch.float64, requires_grad=True)
    (y, state), (y_pure, state_pure) = fast(x, mode="chunked", return_state=True), pure(x, mode="chunked", return_state=True)
    assert relative_error(y, y_pure) < 1e-12
    flat, flat_pure = (torch.cat([t.flatten() for t in _tensors(s)]) for s in (state, state_pure))
    assert relative_error(flat, flat_pure) < 1e-12
    grads = torch.autograd.grad(y.pow(2).sum(), [x, *fast.parameters()])
    grads_pure = torch.autograd.grad(y_pure.pow(2).sum(), [x, *pure.parameters()])
    # relative to max(‖g‖, 1): at length 1 the transition's true gradient is 0 and both hold roundoff
    assert all((a - b).norm() <= 1e-10 * max(b.norm(), 1.0) for a, b in zip(grads, grads_pure))
    y_t, _ = fast.step(torch.randn(2, 16, dtype=torch.float64), state)  # decoding continues from the kernel's state
    assert torch.isfinite(y_t).all()


def _tensors(state):
    if isinstance(state, torch.Tensor):
        return [state.real, state.imag] if state.is_complex() else [state.double()]
    if isinstance(state, (tuple, list)):
        return [t for part in state for t in _tensors(part)]
    return [torch.tensor([float(state)], dtype=torch.float64)]


@pytest.mark.parametrize("name", ["gateloop", "retnet", "linear_attention", "gla", "gated_deltanet", "rwkv7"])
def test_missing_fla_names_the_package_and_the_install_command(name):
    if try_import("fla.ops.simple_gla") is not None:
        pytest.skip("fla-core is installed here")
    layer = models.build(name, d_model=16, backend="fla")  # constructing is fine; running needs the package
    with pytest.raises(RuntimeError, match=r"backend 'fla' needs the package 'fla-core'.*pip install 'seqbench\[cuda\]'"):
        layer(torch.randn(1, 4, 16), mode="chunked")
    with pytest.raises(ValueError, match=r"unknown backend 'triton'; valid: "):
        models.build(name, d_model=16, backend="triton")


# --- the 2024–25 mixers' kernels: each fla function written as its documented recurrence ----------------
def chunk_gla_in_pytorch(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
    """fla.ops.gla.chunk_gla: S_t = diag(e^{g_t}) S_{t−1} + k_tᵀ v_t, o_t = scale · q_t S_t (B, T, H, ·)."""
    state = q.new_zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[3]) if initial_state is None else initial_state
    outputs = []
    for t in range(q.shape[1]):
        state = g[:, t].exp()[..., None] * state + k[:, t, ..., None] * v[:, t, :, None, :]
        outputs.append(scale * torch.einsum("bhk,bhkv->bhv", q[:, t], state))
    return torch.stack(outputs, 1), state if output_final_state else None


def chunk_gated_delta_rule_in_pytorch(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False):
    """fla.ops.gated_delta_rule.chunk_gated_delta_rule: S_t = e^{g_t} (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,
    o_t = scale · q_t S_t; g, beta (B, T, H)."""
    state = q.new_zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[3]) if initial_state is None else initial_state
    outputs = []
    for t in range(q.shape[1]):
        state = g[:, t].exp()[..., None, None] * state
        state = state + beta[:, t, :, None, None] * k[:, t, ..., None] * (v[:, t] - torch.einsum("bhkv,bhk->bhv", state, k[:, t]))[..., None, :]
        outputs.append(scale * torch.einsum("bhk,bhkv->bhv", q[:, t], state))
    return torch.stack(outputs, 1), state if output_final_state else None


def chunk_rwkv7_in_pytorch(r, w, k, v, a, b, scale=1.0, initial_state=None, output_final_state=True):
    """fla.ops.rwkv7.chunk_rwkv7 (the DPLR rule): S_t = diag(e^{w_t}) S_{t−1} + b_t (a_tᵀ S_{t−1}) + k_t v_tᵀ, o_t = scale · r_t S_t."""
    state = r.new_zeros(r.shape[0], r.shape[2], r.shape[3], v.shape[3]) if initial_state is None else initial_state
    outputs = []
    for t in range(r.shape[1]):
        read = torch.einsum("bhkv,bhk->bhv", state, a[:, t])
        state = w[:, t].exp()[..., None] * state + b[:, t, ..., None] * read[..., None, :] + k[:, t, ..., None] * v[:, t, :, None, :]
        outputs.append(scale * torch.einsum("bhk,bhkv->bhv", r[:, t], state))
    return torch.stack(outputs, 1), state if output_final_state else None


KERNELS = {"fla.ops.gla": types.SimpleNamespace(chunk_gla=chunk_gla_in_pytorch),
           "fla.ops.gated_delta_rule": types.SimpleNamespace(chunk_gated_delta_rule=chunk_gated_delta_rule_in_pytorch),
           "fla.ops.rwkv7": types.SimpleNamespace(chunk_rwkv7=chunk_rwkv7_in_pytorch)}


@pytest.mark.parametrize("name,options", [("gla", {"heads": 2}), ("gated_deltanet", {"heads": 2}),
                                          ("gated_deltanet", {"heads": 2, "gate": False, "negative_eigenvalues": True}),
                                          ("rwkv7", {"head_dim": 8})])
@pytest.mark.parametrize("length", [1, 13, 70])
def test_the_new_kernels_adapters_equal_the_pytorch_chunked_mode(monkeypatch, name, options, length):
    """The arguments each adapter passes (log gates, β, scale 1, a = −κ̂, b = κ̂ ⊙ a_rate, state layout)
    against fla's documented contracts: outputs, final state and every gradient equal the PyTorch mode."""
    calls = []

    def require(module, *, backend, on_device):
        calls.append(module)
        return KERNELS[module]

    monkeypatch.setattr(fla_backend, "require", require)
    assert_adapter_equals_pytorch(name, options, length, backend="fla")
    assert calls
