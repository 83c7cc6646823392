import pytest
import torch

from seqbench import models
from seqbench.models.fair import count_parameters, solve_widths
from seqbench.models.gateloop.ops import gateloop
from seqbench.models.optional import try_import
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
    for mode in ("recurrent", "scan", "attention", "chunked"):
        y, _ = gateloop(q, k, v, a, mode=mode, chunk_size=8)
        assert relative_error(y[..., 0], s5(u)) < 1e-10, mode


def test_retnet_decays_follow_the_paper():
    layer = models.build("retnet", d_model=32, heads=4)
    assert torch.allclose(layer.log_gamma.exp(), torch.tensor([1 - 2.0**-5, 1 - 2.0**-6, 1 - 2.0**-7, 1 - 2.0**-8], dtype=torch.float64))


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


def test_retnet_value_width_and_norms():
    layer = models.build("retnet", d_model=16, heads=2)  # the paper's value width: 2 d_model
    assert layer.to_qkv.out_features == 16 + 16 + 32 and layer.to_out.in_features == 32
    assert layer.state_size() == 2 * 8 * 16 and isinstance(layer.norm, torch.nn.GroupNorm)
    rms = models.build("retnet", d_model=16, heads=2, norm="rmsnorm", value_factor=1).double()
    y = torch.randn(3, 2, 8, dtype=torch.float64)  # (…, heads, value_dim): per-head, no mean, no affine
    expected = (y / y.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()).flatten(-2)
    assert relative_error(rms.norm(y).flatten(-2), expected) < 1e-10
    assert not list(rms.norm.parameters())
    with pytest.raises(ValueError, match="unknown norm 'layernorm'; valid: groupnorm, rmsnorm"):
        models.build("retnet", d_model=16, norm="layernorm")


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("retnet", {"heads": 3}, "heads must be a positive divisor of d_model=16"),
        ("retnet", {"heads": 16}, "rotary positions need an even head dim"),
        ("softmax_attention", {"backend": "xformers"}, "unknown backend 'xformers'; valid: sdpa, flash_attn"),
        ("mamba", {"backend": "cuda"}, "unknown backend 'cuda'; valid: auto, cpp, torch, mamba_ssm"),
        ("mamba", {"d_conv": 1}, "d_conv must be an integer ≥ 2"),
        ("linear_attention", {"chunk_size": -1}, "chunk_size must be a positive integer"),
        ("linear_attention", {"short_conv": 2.5}, r"linear_attention: short_conv is a kernel size \(0: no convolution\), got 2.5"),
        ("retnet", {"short_conv": -2}, r"retnet: short_conv is a kernel size \(0: no convolution\), got -2"),
        ("s5", {"dt_min": 0.5, "dt_max": 0.1}, "need 0 < dt_min <= dt_max"),
    ],
)
def test_bad_baseline_options(name, options, message):
    with pytest.raises(ValueError, match=message):
        models.build(name, d_model=16, **options)


def test_softmax_attention_state_size_needs_a_length():
    layer = models.build("softmax_attention", d_model=16)
    assert layer.state_size(seq_len=10) == 2 * 16 * 10
    with pytest.raises(ValueError, match="pass seq_len"):
        layer.state_size()


# --- optional CUDA backends ---------------------------------------------------------------------
OPTIONAL = [("softmax_attention", "flash_attn", "flash_attn", "flash-attn"),
            ("mamba", "mamba_ssm", "mamba_ssm.ops.selective_scan_interface", "mamba-ssm")]


@pytest.mark.parametrize("name,backend,module,package", OPTIONAL)
def test_missing_optional_backend_names_package_and_install_command(name, backend, module, package):
    if try_import(module) is not None:
        pytest.skip(f"{package} is installed here")
    layer = models.build(name, d_model=16, backend=backend)  # constructing is fine; running needs the package
    with pytest.raises(RuntimeError, match=rf"backend '{backend}' needs the package '{package}'.*pip install 'seqbench\[cuda\]'"):
        layer(torch.randn(1, 4, 16))


@pytest.mark.parametrize("name,backend,module,package", OPTIONAL)
def test_optional_backend_matches_pure_pytorch_on_cuda(name, backend, module, package):
    if try_import(module) is None or not torch.cuda.is_available():
        pytest.skip(f"needs {package} and a CUDA device")
    torch.manual_seed(0)
    fast = models.build(name, d_model=64, backend=backend).cuda().half()
    pure = models.build(name, d_model=64, **({"backend": "torch"} if name == "mamba" else {})).cuda().half()
    pure.load_state_dict(fast.state_dict())
    x = torch.randn(2, 128, 64, device="cuda", dtype=torch.half)
    assert relative_error(fast(x), pure(x)) < 1e-2


# --- fair comparison ----------------------------------------------------------------------------
@pytest.mark.parametrize("mixer", models.available())
def test_solved_widths_hit_the_target_within_two_percent(mixer):
    target = count_parameters(vocab_size=256, d_model=128, n_layers=2, mixer="gateloop", mlp_ratio=2)
    d_model, hidden, count = solve_widths(target, mlp_ratio=2, vocab_size=256, n_layers=2, mixer=mixer)
    assert count == count_parameters(vocab_size=256, d_model=d_model, n_layers=2, mixer=mixer, mlp_hidden=hidden)
    assert abs(count - target) / target <= 0.02 and 1 <= hidden / d_model <= 3


def test_matching_fails_loudly_when_impossible():
    with pytest.raises(ValueError, match="needs an MLP"):
        solve_widths(10_000, mlp_ratio=0, vocab_size=256, n_layers=2, mixer="gateloop")
    with pytest.raises(ValueError, match="no width gives gateloop within ±2% of 10 parameters"):
        solve_widths(10, mlp_ratio=2, vocab_size=256, n_layers=2, mixer="gateloop")
