"""Mamba's scan in every mode and backend (ops.py, the compiled loop) against the float64 loop of
reference.py: outputs, final state and every gradient (the final state's included), at odd lengths
and checkpoint chunk sizes; and the layer's recurrent mode on the compiled loop against the layer's
float64 reference. The compiled loop must build here: a failed build fails these tests."""
import pytest
import torch

from seqbench import models
from seqbench.models.mamba import compiled
from seqbench.models.mamba.ops import MODES, selective_scan
from seqbench.models.mamba.reference import selective_scan_reference
from tests.helpers import relative_error


def inputs(length, channels=5, states=3, dtype=torch.float64, seed=0, step_scale=0.5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, length, channels, generator=g, dtype=dtype),
            torch.rand(2, length, channels, generator=g, dtype=dtype) * step_scale,
            -torch.rand(channels, states, generator=g, dtype=dtype) - 0.1,
            torch.randn(2, length, states, generator=g, dtype=dtype),
            torch.randn(2, length, states, generator=g, dtype=dtype),
            torch.randn(channels, generator=g, dtype=dtype)]


def outputs_and_grads(fn, tensors):
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    y, h = fn(*leaves)
    g = torch.Generator().manual_seed(9)
    weights = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype) for t in (y, h)]  # same draws in any dtype
    loss = (y * weights[0]).sum() + (h * weights[1]).sum()
    loss.backward()
    # an input that cannot reach the loss (A at length 1: no earlier state to decay) has no gradient: zero
    return y.detach(), h.detach(), [torch.zeros_like(leaf) if leaf.grad is None else leaf.grad for leaf in leaves]


def test_the_compiled_loop_builds_here():
    built, reason = compiled.available()
    assert built, f"Mamba's compiled CPU scan did not build: {reason}"


@pytest.mark.parametrize("chunk", [1, 7, 64])
@pytest.mark.parametrize("length", [1, 63, 64, 65, 130])
def test_compiled_scan_matches_the_reference_in_float64(monkeypatch, length, chunk):
    monkeypatch.setattr(compiled, "CHECKPOINT_CHUNK", chunk)
    tensors = inputs(length)
    y, h, grads = outputs_and_grads(compiled.selective_scan_cpp, tensors)
    y_ref, h_ref, grads_ref = outputs_and_grads(selective_scan_reference, tensors)
    assert relative_error(y, y_ref) < 1e-12 and relative_error(h, h_ref) < 1e-12
    for name, grad, expected in zip(("u", "dt", "A", "B", "C", "D"), grads, grads_ref):
        assert relative_error(grad, expected) < 1e-11, name


@pytest.mark.parametrize("length", [1, 7, 64, 257])
@pytest.mark.parametrize("mode", MODES)
def test_pytorch_modes_match_the_reference_in_float32(mode, length):
    tensors = inputs(length)
    y, h, grads = outputs_and_grads(lambda *t: selective_scan(*t, mode=mode, backend="torch"), [t.float() for t in tensors])
    y_ref, h_ref, grads_ref = outputs_and_grads(selective_scan_reference, tensors)
    assert relative_error(y, y_ref) < 1e-5 and relative_error(h, h_ref) < 1e-5
    for name, grad, expected in zip(("u", "dt", "A", "B", "C", "D"), grads, grads_ref):
        assert relative_error(grad, expected) < 1e-4, name


@pytest.mark.parametrize("step_scale", [0.5, 60.0], ids=["slow decay", "ΔA down to −130: float32 exp's whole range"])
def test_compiled_scan_in_float32_is_within_float32_accuracy(step_scale):
    """float32 decays use the kernel's own vectorised exp; it must keep float32 accuracy."""
    tensors = inputs(300, channels=16, states=8, step_scale=step_scale)
    y, h, grads = outputs_and_grads(compiled.selective_scan_cpp, [t.float() for t in tensors])
    y_ref, h_ref, grads_ref = outputs_and_grads(selective_scan_reference, tensors)
    assert relative_error(y, y_ref) < 1e-5 and all(relative_error(a, b) < 1e-4 for a, b in zip(grads, grads_ref))


def test_unknown_mode_and_backend_list_the_valid_ones():
    tensors = inputs(3)
    with pytest.raises(ValueError, match="unknown Mamba scan mode 'fast'; valid modes: recurrent, scan"):
        selective_scan(*tensors, mode="fast")
    with pytest.raises(ValueError, match="unknown backend 'cuda'; valid: auto, cpp, torch"):
        selective_scan(*tensors, backend="cuda")


def test_mamba_recurrent_mode_runs_the_compiled_scan_on_cpu_and_matches_its_reference():
    torch.manual_seed(0)
    layer = models.build("mamba", d_model=16, d_state=4)
    assert layer.backend_used() == "cpp" and layer.backend_used("scan") == "torch"
    assert models.build("mamba", d_model=16, backend="torch").backend_used() == "torch"
    x = torch.randn(2, 67, 16, dtype=torch.float64)
    double = layer.double()
    assert relative_error(double(x, mode="recurrent"), double.reference_forward(x)) < 1e-12
    with pytest.raises(RuntimeError, match="backend 'cpp' runs its compiled loop on CPU tensors"):
        models.build("mamba", d_model=16, backend="cpp")(torch.randn(1, 3, 16), mode="scan")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("length", [2, 13, 40])  # from 2: a decay acts only on an earlier state
def test_negative_eigenvalues_stretch_each_decay_to_minus_one_to_one_in_every_mode(mode, length):
    """2 e^{ΔA} − 1 (arXiv 2411.12537): outputs, final state and gradients against the float64 loop,
    and a state that really changes sign where a decay is below ½."""
    u, dt, A, Bm, C, skip = (t.requires_grad_(True) for t in inputs(length, dtype=torch.float64))
    y, state = selective_scan(u, dt, A, Bm, C, skip, mode=mode, backend="auto", negative_eigenvalues=True)
    y_ref, state_ref = selective_scan_reference(u, dt, A, Bm, C, skip, negative_eigenvalues=True)
    assert relative_error(y, y_ref) < 1e-12 and relative_error(state, state_ref) < 1e-12
    grads = torch.autograd.grad(y.square().sum(), (u, dt, A, Bm))
    grads_ref = torch.autograd.grad(y_ref.square().sum(), (u, dt, A, Bm))
    assert all(relative_error(g, r) < 1e-10 for g, r in zip(grads, grads_ref))
    positive, _ = selective_scan_reference(u, dt, A, Bm, C, skip)
    assert not torch.allclose(y_ref, positive)
    with pytest.raises(ValueError, match="negative_eigenvalues runs on backend 'torch'"):
        selective_scan(u, dt, A, Bm, C, skip, mode=mode, backend="cpp", negative_eigenvalues=True)


def test_the_mamba_layer_with_negative_eigenvalues_runs_on_pytorch_and_passes_its_contract():
    from seqbench.models import conformance

    layer = models.build("mamba", d_model=16, negative_eigenvalues=True)
    assert layer.backend_used("recurrent") == "torch"
    with pytest.raises(ValueError, match="backend 'cpp' has decays in \\(0, 1\\) only"):
        models.build("mamba", d_model=16, negative_eigenvalues=True, backend="cpp")
    failed = [(r.check, r.detail) for r in conformance.run_checks("mamba", {"negative_eigenvalues": True}) if not r.passed]
    assert failed == []
