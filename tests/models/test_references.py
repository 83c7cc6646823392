"""Every mode of every mixer, in float32, against the mixer's float64 reference: outputs and gradients."""
import copy

import pytest
import torch

from seqbench import models
from tests.helpers import relative_error

TOLERANCE = 2e-5
SMALL = {"gateloop": {"heads": 4, "chunk_size": 5}, "retnet": {"chunk_size": 5},
         "linear_attention": {"chunk_size": 5}, "s5": {"state_dim": 12}, "mamba": {"d_state": 4}}


VARIANTS = [(name, SMALL.get(name, {})) for name in models.available()]
VARIANTS += [(name, {**SMALL[name], "short_conv": 4}) for name in ("gateloop", "retnet", "linear_attention")]
VARIANTS += [("retnet", {**SMALL["retnet"], "norm": "rmsnorm", "value_factor": 1}),
             ("s5", {**SMALL["s5"], "activation": "full_glu", "bc_init": "direct"}),
             ("s5", {**SMALL["s5"], "activation": "none", "init": "ring", "bc_init": "direct"})]


def cases():
    return [pytest.param(name, options, mode, id=f"{name}-{mode}-" + "-".join(f"{k}={v}" for k, v in options.items()))
            for name, options in VARIANTS for mode in models.registry.get_class(name).modes]


def outputs_and_gradients(mixer, x, forward):
    x = x.detach().clone().requires_grad_(True)
    y = forward(mixer, x)
    weight = torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(y.dtype)
    (y * weight).sum().backward()
    grads = {"input": x.grad, **{name: p.grad for name, p in mixer.named_parameters()}}
    return y.detach(), grads


@pytest.mark.parametrize("length", [6, 17])
@pytest.mark.parametrize("name,options,mode", cases())
def test_mode_matches_float64_reference(name, options, mode, length):
    torch.manual_seed(0)
    mixer = models.build(name, d_model=16, **options)
    reference_mixer = copy.deepcopy(mixer).double()
    x = torch.randn(2, length, 16, generator=torch.Generator().manual_seed(length))
    y, grads = outputs_and_gradients(mixer, x, lambda m, t: m(t, mode=mode))
    y_ref, grads_ref = outputs_and_gradients(reference_mixer, x.double(), lambda m, t: m.reference_forward(t))
    assert relative_error(y, y_ref) <= TOLERANCE
    for parameter, grad in grads.items():
        if grads_ref[parameter] is None:
            assert grad is None or grad.abs().max() == 0, parameter
            continue
        assert relative_error(grad, grads_ref[parameter]) <= TOLERANCE, f"d/d{parameter}"
