"""The gated output norm (models/gated_norm.py): fla's order (norm, then gate) and Mamba-2's (gate,
then norm), each against the formula written out."""
import torch
import torch.nn.functional as F

from seqbench.models.gated_norm import GatedRMSNorm


def rms(x, eps=1e-5):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def test_norm_then_gate_and_gate_then_norm_are_the_formulas():
    g = torch.Generator().manual_seed(0)
    x, gate = (torch.randn(2, 5, 8, generator=g, dtype=torch.float64) for _ in range(2))
    after = GatedRMSNorm(8).double()
    with torch.no_grad():
        after.weight.copy_(torch.linspace(0.5, 1.5, 8))
    assert torch.allclose(after(x, gate), rms(x) * after.weight * F.silu(gate))
    assert torch.allclose(after(x, None), rms(x) * after.weight)
    first = GatedRMSNorm(8, gate_first=True).double()
    assert torch.allclose(first(x, gate), rms(x * F.silu(gate)))
    assert not torch.allclose(first(x, gate), GatedRMSNorm(8).double()(x, gate))  # the order matters
