"""Every GateLoop mode against the float64 reference: outputs, final state, gradients."""
import math
import os

import pytest
import torch

from seqbench.models.gateloop.ops import LITERAL_VARIANT, MODES, PER_CHANNEL_CHUNKED, gateloop
from seqbench.models.gateloop.reference import gateloop_reference
from seqbench.models.scan import METHODS, linear_recurrence
from tests.helpers import relative_error

TOLERANCE = 1e-5  # relative, float32 / complex64 against float64 / complex128
HEAD_SHAPES = {"max_heads": (6, 1, 1), "head_dim_3x2": (2, 3, 2)}  # (H, dk, dv)
# for the compiled loop's row loops: dv = 20 is one full AVX-512 vector and a masked tail in float32 (16
# lanes), two and a tail in float64; and a (B, L, H, 1), one transition per head, as the layer passes it
COMPILED_SHAPES = {"head_dim_3x20": (2, 3, 20), "one_a_per_head_3x20": (2, 3, 20, "per head")}
# the layer's chunked mode takes one transition per head (max heads has one per channel, which is the same)
PER_HEAD_SHAPES = {"max_heads": (6, 1, 1), "one_a_per_head_3x2": (2, 3, 2, "per head")}


def make_inputs(batch, length, heads, dk, dv, a_per=None, *, seed=0, dtype=torch.float32, min_magnitude=0.5):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(batch, length, heads, dk, generator=g, dtype=dtype) for _ in range(2))
    v = torch.randn(batch, length, heads, dv, generator=g, dtype=dtype)
    a_shape = (batch, length, heads, 1 if a_per == "per head" else dk)
    magnitude = min_magnitude + (1 - min_magnitude) * torch.rand(a_shape, generator=g, dtype=dtype)
    phase = (2 * torch.rand(a_shape, generator=g, dtype=dtype) - 1) * math.pi
    a = torch.polar(magnitude, phase)
    h0 = torch.randn(batch, heads, dk, dv, generator=g, dtype=a.dtype)
    return q, k, v, a, h0


def outputs_and_gradients(fn, inputs, seed=1):
    """Run fn on leaf copies; return y, final state and d(random projection of both)/d(each input)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    y, state = fn(*leaves)
    g = torch.Generator().manual_seed(seed)
    weight_y = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)
    weight_state = torch.randn(state.shape, generator=g, dtype=torch.complex128).to(state.dtype)
    loss = (y * weight_y).sum() + (state * weight_state.conj()).real.sum()
    loss.backward()
    return y.detach(), state.detach(), [leaf.grad for leaf in leaves]


_reference_cache = {}


def reference(shape_name, length):
    key = (shape_name, length)
    if key not in _reference_cache:
        inputs = make_inputs(2, length, *{**HEAD_SHAPES, **COMPILED_SHAPES, **PER_HEAD_SHAPES}[shape_name])
        double_inputs = [t.to(torch.complex128 if t.is_complex() else torch.float64) for t in inputs]
        _reference_cache[key] = (inputs, outputs_and_gradients(
            lambda q, k, v, a, h0: gateloop_reference(q, k, v, a, h0), double_inputs))
    return _reference_cache[key]


def assert_matches_reference(mode_fn, shape_name, length):
    inputs, (y_ref, state_ref, grads_ref) = reference(shape_name, length)
    y, state, grads = outputs_and_gradients(mode_fn, inputs)
    assert y.dtype == torch.float32 and state.dtype == torch.complex64
    assert relative_error(y, y_ref) <= TOLERANCE
    assert relative_error(state, state_ref) <= TOLERANCE
    for name, grad, grad_ref in zip(("q", "k", "v", "a", "initial_state"), grads, grads_ref):
        assert relative_error(grad, grad_ref) <= TOLERANCE, f"d/d{name}"


@pytest.mark.parametrize("length", [1, 7, 64, 257, 1024])
@pytest.mark.parametrize("shape_name", list(HEAD_SHAPES))
@pytest.mark.parametrize("mode", ["recurrent", "scan", "attention"])
def test_mode_matches_float64_reference(mode, shape_name, length):
    assert_matches_reference(lambda *t: gateloop(*t[:4], mode=mode, initial_state=t[4]), shape_name, length)


@pytest.mark.parametrize("length", [1, 7, 64, 257, 1024])
@pytest.mark.parametrize("shape_name", list(HEAD_SHAPES))
@pytest.mark.parametrize("chunk_size", [1, 16, 64, 100])
def test_per_channel_chunked_matches_float64_reference(chunk_size, shape_name, length):
    fn = lambda *t: gateloop(*t[:4], mode=PER_CHANNEL_CHUNKED, initial_state=t[4], chunk_size=chunk_size)  # noqa: E731
    assert_matches_reference(fn, shape_name, length)


@pytest.mark.parametrize("length", [1, 7, 64, 257])
@pytest.mark.parametrize("shape_name", list(PER_HEAD_SHAPES))
@pytest.mark.parametrize("chunk_size", [1, 16, 100])
def test_chunked_is_the_layers_rotated_form_and_matches_float64_reference(chunk_size, shape_name, length):
    fn = lambda *t: gateloop(*t[:4], mode="chunked", initial_state=t[4], chunk_size=chunk_size)  # noqa: E731
    assert_matches_reference(fn, shape_name, length)


def test_chunked_refuses_a_transition_per_channel_and_names_the_mode_that_takes_one():
    q, k, v, a, _ = make_inputs(1, 9, 2, 3, 2)
    with pytest.raises(ValueError, match="one transition per head.*'chunked_per_channel'"):
        gateloop(q, k, v, a, mode="chunked")


@pytest.mark.parametrize("method", ["sequential", "odd_even"])
def test_scan_methods_match_reference(method):
    fn = lambda *t: gateloop(*t[:4], mode="scan", initial_state=t[4], scan_method=method)  # noqa: E731
    assert_matches_reference(fn, "head_dim_3x2", 257)


@pytest.mark.parametrize("mode", [*MODES, PER_CHANNEL_CHUNKED])
def test_without_initial_state_equals_zero_state(mode):
    q, k, v, a, h0 = make_inputs(1, 33, 2, 2, 2, "per head")
    y, state = gateloop(q, k, v, a, mode=mode, chunk_size=8)
    y_ref, state_ref = gateloop_reference(q, k, v, a, torch.zeros_like(h0))
    assert relative_error(y, y_ref) <= TOLERANCE and relative_error(state, state_ref) <= TOLERANCE


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("length", [1, 2, 3, 5, 8, 13, 100])
def test_linear_recurrence_methods(method, length):
    g = torch.Generator().manual_seed(length)
    a = torch.polar(torch.rand(3, length, 4, generator=g, dtype=torch.float64), torch.rand(3, length, 4, generator=g, dtype=torch.float64))
    b = torch.randn(3, length, 4, generator=g, dtype=torch.complex128)
    h0 = torch.randn(3, 4, generator=g, dtype=torch.complex128)
    expected, h = [], h0
    for t in range(length):
        h = a[:, t] * h + b[:, t]
        expected.append(h)
    assert torch.allclose(linear_recurrence(a, b, h0, method=method), torch.stack(expected, 1), rtol=1e-12, atol=1e-12)


def test_attention_mode_is_finite_and_exact_at_4096():
    length = 4096
    inputs = make_inputs(1, length, 2, 1, 1, seed=3)
    y, state = gateloop(*inputs[:4], mode="attention", initial_state=inputs[4])
    y_ref, state_ref = gateloop_reference(*inputs)
    assert torch.isfinite(y).all() and torch.isfinite(state).all()
    assert relative_error(y, y_ref) <= TOLERANCE
    assert relative_error(state, state_ref) <= TOLERANCE


def literal_nonfinite_fraction(length, dtype):
    q, k, v, a, _ = make_inputs(1, length, 8, 1, 1, seed=5, dtype=dtype)
    y, _ = gateloop(q, k, v, a, mode=LITERAL_VARIANT)
    return (~torch.isfinite(y)).float().mean().item()


def test_literal_surrogate_attention_breaks_down_where_the_stable_form_does_not():
    """|a| ~ U(0.5, 1): |P_m| ≈ e^{-0.31 m}, so 1/P_m overflows complex64 (~1e38) near m ≈ 280."""
    lengths = [16, 32, 64, 128, 256, 512, 1024]
    fractions = {length: literal_nonfinite_fraction(length, torch.float32) for length in lengths}
    breakdown = next(length for length in lengths if fractions[length] > 0)
    print(f"literal complex64 non-finite fraction by length: {fractions}; breaks down at L={breakdown}")
    assert fractions[16] == 0.0 and fractions[1024] > 0.5
    assert 128 <= breakdown <= 512
    # complex128 lasts longer (1e308) but fails too, while the stable form stays exact
    assert literal_nonfinite_fraction(4096, torch.float64) > 0
    q, k, v, a, _ = make_inputs(1, 1024, 8, 1, 1, seed=5)
    y, _ = gateloop(q, k, v, a, mode="attention")
    assert relative_error(y, gateloop_reference(q, k, v, a)[0]) <= TOLERANCE


def test_literal_variant_is_exact_while_it_lasts():
    inputs = make_inputs(2, 24, 3, 2, 2)
    y, state = gateloop(*inputs[:4], mode=LITERAL_VARIANT, initial_state=inputs[4])
    y_ref, state_ref = gateloop_reference(*inputs)
    assert relative_error(y, y_ref) <= 1e-4 and relative_error(state, state_ref) <= 1e-4


class TestBadInputs:
    def inputs(self):
        return make_inputs(1, 5, 2, 2, 2)

    def test_unknown_mode_lists_valid_modes(self):
        q, k, v, a, _ = self.inputs()
        with pytest.raises(ValueError, match="unknown GateLoop mode 'fast'.*recurrent, scan, attention, chunked"):
            gateloop(q, k, v, a, mode="fast")

    def test_wrong_rank(self):
        q, k, v, a, _ = self.inputs()
        with pytest.raises(ValueError, match="q must be a 4-d tensor"):
            gateloop(q[0], k, v, a, mode="scan")

    def test_mismatched_shapes(self):
        q, k, v, a, _ = self.inputs()
        with pytest.raises(ValueError, match="q, k and a must have one shape"):
            gateloop(q, k[:, :4], v, a, mode="scan")
        with pytest.raises(ValueError, match="v must be"):
            gateloop(q, k, v[:, :, :1], a, mode="scan")

    def test_real_transition_tensor_rejected(self):
        q, k, v, a, _ = self.inputs()
        with pytest.raises(TypeError, match="a must be torch.complex64"):
            gateloop(q, k, v, a.real, mode="scan")

    def test_bad_initial_state(self):
        q, k, v, a, h0 = self.inputs()
        with pytest.raises(ValueError, match="initial_state must be"):
            gateloop(q, k, v, a, mode="recurrent", initial_state=h0[:, :1])

    def test_bad_chunk_size_and_scan_method(self):
        q, k, v, a, _ = self.inputs()
        with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
            gateloop(q, k, v, a, mode="chunked", chunk_size=0)
        with pytest.raises(ValueError, match="unknown scan_method 'blelloch'"):
            gateloop(q, k, v, a, mode="scan", scan_method="blelloch")

    def test_empty_sequence(self):
        q, k, v, a, _ = make_inputs(1, 0, 2, 2, 2)
        with pytest.raises(ValueError, match="empty"):
            gateloop(q, k, v, a, mode="scan")


# --- the compiled CPU path of the recurrent mode -------------------------------------------------
def require_compiled():
    from seqbench.models.gateloop import compiled

    built, reason = compiled.available()
    if not built:
        if os.environ.get("CI"):
            pytest.fail(f"the C++ extension must build in CI: {reason}")
        pytest.skip(f"no C++ toolchain here: {reason}")


@pytest.fixture(params=["avx512", "portable"])
def row_loop(request, monkeypatch):
    """The compiled loop's two matrix-state row loops: AVX-512 intrinsics and the portable one."""
    require_compiled()
    from seqbench.models.gateloop import compiled

    if request.param == "avx512" and not compiled._load()[0].has_avx512:
        pytest.skip("this build of the kernel has no AVX-512 (not compiled for such a CPU)")
    monkeypatch.setattr(compiled, "VECTORISED", request.param == "avx512")
    return request.param


@pytest.mark.parametrize("length", [1, 7, 64, 65, 257, 1024])
@pytest.mark.parametrize("shape_name", list(HEAD_SHAPES) + list(COMPILED_SHAPES))
def test_compiled_recurrent_matches_float64_reference(shape_name, length, row_loop):
    fn = lambda *t: gateloop(*t[:4], mode="recurrent", initial_state=t[4], backend="cpp")  # noqa: E731
    assert_matches_reference(fn, shape_name, length)


@pytest.mark.parametrize("shape", [(3, 2, 2), (2, 3, 20), (2, 3, 20, "per head")], ids=str)
def test_compiled_recurrent_in_float64_is_exact(shape, row_loop):
    inputs = [t.to(torch.complex128 if t.is_complex() else torch.float64) for t in make_inputs(2, 130, *shape)]
    y, state, grads = outputs_and_gradients(lambda *t: gateloop(*t[:4], mode="recurrent", initial_state=t[4], backend="cpp"), inputs)
    y_ref, state_ref, grads_ref = outputs_and_gradients(lambda *t: gateloop_reference(*t), inputs)
    assert relative_error(y, y_ref) < 1e-12 and relative_error(state, state_ref) < 1e-12
    assert all(relative_error(g, r) < 1e-12 for g, r in zip(grads, grads_ref))


def test_backend_choice_is_reported_and_checked():
    from seqbench.models.gateloop.ops import resolve_backend

    assert resolve_backend("torch", torch.device("cpu")) == "torch"
    assert resolve_backend("auto", torch.device("meta")) == "torch"  # not a CPU tensor: the PyTorch loop
    with pytest.raises(ValueError, match="gateloop: unknown backend 'triton'; valid: auto, torch, cpp"):
        resolve_backend("triton", torch.device("cpu"))
    with pytest.raises(RuntimeError, match="backend 'cpp' runs its compiled loop on CPU tensors"):
        resolve_backend("cpp", torch.device("meta"))
