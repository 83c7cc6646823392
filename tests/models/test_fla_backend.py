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
    torch.manual_seed(0)
    fast = models.build(name, d_model=16, backend="fla", chunk_size=8, **options).double()
    pure = models.build(name, d_model=16, chunk_size=8, **options).double()
    pure.load_state_dict(fast.state_dict())
    assert fast.default_mode == "chunked" and fast.backend_used("chunked") == "fla" and fast.backend_used("recurrent") == "torch"
    x = torch.randn(2, length, 16, dtype=torch.float64, requires_grad=True)
    y, state = fast(x, mode="chunked", return_state=True)
    y_pure, state_pure = pure(x, mode="chunked", return_state=True)
    assert fake_fla and relative_error(y, y_pure) < 1e-12
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


@pytest.mark.parametrize("name", ["gateloop", "retnet", "linear_attention"])
def test_missing_fla_names_the_package_and_the_install_command(name):
    if try_import("fla.ops.simple_gla") is not None:
        pytest.skip("fla-core is installed here")
    layer = models.build(name, d_model=16, backend="fla")  # constructing is fine; running needs the package
    with pytest.raises(RuntimeError, match=r"backend 'fla' needs the package 'fla-core'.*pip install 'seqbench\[cuda\]'"):
        layer(torch.randn(1, 4, 16), mode="chunked")
    with pytest.raises(ValueError, match=r"unknown backend 'triton'; valid: "):
        models.build(name, d_model=16, backend="triton")
