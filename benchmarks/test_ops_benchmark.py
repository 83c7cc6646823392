"""pytest-benchmark suite of the hot ops (`make bench`); kept apart from the correctness tests."""
import pytest
import torch

from seqbench import models
from seqbench.models.gateloop.implementations import IMPLEMENTATIONS, op_inputs
from seqbench.models.gateloop.ops import gateloop

torch.set_num_threads(2)


@pytest.mark.parametrize("length", [1024, 4096])
@pytest.mark.parametrize("implementation", list(IMPLEMENTATIONS))
def test_gateloop_op_forward_backward(benchmark, implementation, length):
    if implementation.startswith("chunked per channel") and length > 1024:
        pytest.skip("per-channel decay matrices at max heads: minutes per call on CPU")
    options = IMPLEMENTATIONS[implementation]
    leaves = [t.requires_grad_(True) for t in op_inputs(4, length, 256)]

    def step():
        y, _ = gateloop(*leaves, **options)
        y.sum().backward()

    benchmark.pedantic(step, rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("name,mode", [(n, m) for n in models.available() for m in models.registry.get_class(n).modes
                                       if not (n == "gateloop" and m in ("attention", "chunked"))])
def test_mixer_forward(benchmark, name, mode):
    mixer = models.build(name, d_model=128)
    x = torch.randn(4, 1024, 128)
    with torch.no_grad():
        benchmark.pedantic(lambda: mixer(x, mode=mode), rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("mode", ["recurrent", "chunked"])
@pytest.mark.parametrize("heads", [4, 2])
def test_gateloop_matrix_state_layer_forward_backward(benchmark, heads, mode):
    """head_dim 32 and 64 at B16 L256 d128: the compiled loop against the rotated chunked matmuls."""
    layer = models.build("gateloop", d_model=128, heads=heads)
    x = torch.randn(16, 256, 128, requires_grad=True)
    benchmark.pedantic(lambda: layer(x, mode=mode).sum().backward(), rounds=5, warmup_rounds=1)
