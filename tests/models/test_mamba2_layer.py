"""Mamba-2's layer beyond the generic contract: backend="mamba_ssm" calls mamba-ssm's SSD kernel with
the arguments its documented contract needs (run here with that contract written in PyTorch), and
without the package the error names it."""
import types

import pytest
import torch

from seqbench import models
from seqbench.models.backends import try_import
from seqbench.models.mamba2 import layer as mamba2_layer
from tests.models.test_fla_backend import assert_adapter_equals_pytorch


def mamba_chunk_scan_combined_in_pytorch(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
                                         dt_softplus=False, return_final_states=False):
    """mamba_ssm.ops.triton.ssd_combined.mamba_chunk_scan_combined: h_t = e^{Δ_t A} h_{t−1} + Δ_t x_t B_tᵀ,
    y_t = h_t C_t (+ D x_t); x (b, l, h, p), dt (b, l, h), A (h), B, C (b, l, g, n) with g groups; h (b, h, p, n)."""
    assert D is None and z is None and dt_bias is None and not dt_softplus and chunk_size > 0
    groups = x.shape[2] // B.shape[2]
    B, C = B.repeat_interleave(groups, 2), C.repeat_interleave(groups, 2)
    h = x.new_zeros(x.shape[0], x.shape[2], x.shape[3], B.shape[3]) if initial_states is None else initial_states
    ys = []
    for t in range(x.shape[1]):
        h = (dt[:, t] * A).exp()[..., None, None] * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, :, None, :]
        ys.append((h * C[:, t, :, None, :]).sum(-1))
    y = torch.stack(ys, 1)
    return (y, h) if return_final_states else y


@pytest.mark.parametrize("length", [1, 13, 70])
def test_the_mamba_ssm_adapter_equals_the_pytorch_chunked_mode(monkeypatch, length):
    monkeypatch.setattr(mamba2_layer, "require", lambda module, *, backend, on_device: types.SimpleNamespace(
        mamba_chunk_scan_combined=mamba_chunk_scan_combined_in_pytorch))
    assert_adapter_equals_pytorch("mamba2", {"d_state": 8, "head_dim": 8}, length, backend="mamba_ssm")


def test_without_mamba_ssm_the_error_names_the_package():
    if try_import(mamba2_layer.MAMBA_SSM) is not None:
        pytest.skip("mamba-ssm is installed here")
    layer = models.build("mamba2", d_model=16, backend="mamba_ssm", d_state=8, head_dim=8)
    with pytest.raises(RuntimeError, match=r"backend 'mamba_ssm' needs the package 'mamba-ssm'.*pip install 'seqbench\[cuda\]'"):
        layer(torch.randn(1, 4, 16), mode="chunked")
    with pytest.raises(ValueError, match=r"mamba2: unknown backend 'fla'; valid: torch, mamba_ssm"):
        models.build("mamba2", d_model=16, backend="fla")
