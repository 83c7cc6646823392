"""RetNet (models/retnet.py): decays as the paper sets them, value width and norms."""
import pytest
import torch

from seqbench import models
from tests.helpers import relative_error


def test_retnet_decays_follow_the_paper():
    layer = models.build("retnet", d_model=32, heads=4)
    assert torch.allclose(layer.log_gamma.exp(), torch.tensor([1 - 2.0**-5, 1 - 2.0**-6, 1 - 2.0**-7, 1 - 2.0**-8], dtype=torch.float64))


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
