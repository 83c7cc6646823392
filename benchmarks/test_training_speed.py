"""The speed targets of the issue "every mixer trains at CPU speed", as pytest-benchmark cases on one
thread, in one process, median of 5 rounds after a warm-up (`make bench-targets` writes
results/speed/benchmarks.json; this VM drifts by up to ~40% between minutes, so compare within a run):

- the byte LM's optimizer step per mixer (d_model 128, 4 layers, MLP ×4, L 256, batch 16);
- GateLoop's op with a matrix state: head_dim 32 at B16 L256 d128, and head_dim 64 against length
  (compiled loop and rotated chunked matmuls);
- GateLoop's layer (max heads) at B4 L16384 d256 beside its projections and its op alone.
"""
import pytest
import torch
import torch.nn.functional as F

from seqbench import models
from seqbench.models.gateloop.ops import gateloop
from seqbench.models.gateloop.rotated import gateloop_rotated_chunked


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


MIXERS = [("gateloop", {}), ("gateloop", {"heads": 4}), ("softmax_attention", {}), ("linear_attention", {}),
          ("retnet", {}), ("s5", {}), ("mamba", {}), ("gla", {}), ("gated_deltanet", {}), ("mamba2", {}), ("rwkv7", {})]


@pytest.mark.parametrize("name,options", MIXERS, ids=[f"{n}{'-heads' + str(o['heads']) if o else ''}" for n, o in MIXERS])
def test_lm_training_step(benchmark, name, options):
    torch.manual_seed(0)
    model = models.LanguageModel(vocab_size=256, d_model=128, n_layers=4, mixer=name, mixer_options=options, mlp_ratio=4)
    optimizer = torch.optim.AdamW(model.parameters())
    tokens = torch.randint(0, 256, (16, 257))

    def step():
        loss = F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    benchmark.extra_info["layers"] = model.layers()
    benchmark.pedantic(step, rounds=5, warmup_rounds=1)


def matrix_state_inputs(batch, length, heads, head_dim):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, length, heads, head_dim, generator=g) for _ in range(3))
    log_magnitude = -0.3 * torch.rand(batch, length, heads, generator=g)
    theta = torch.randn(batch, length, heads, generator=g)
    return q, k, v, log_magnitude, theta


@pytest.mark.parametrize("path", ["compiled recurrent", "rotated chunked"])
def test_gateloop_op_head_dim_32(benchmark, path):
    """heads = 4 at d128 (head_dim 32), B16 L256: the op alone, forward + backward."""
    q, k, v, log_magnitude, theta = (t.requires_grad_(True) for t in matrix_state_inputs(16, 256, 4, 32))

    def step():
        if path == "rotated chunked":
            y, _ = gateloop_rotated_chunked(q, k, v, log_magnitude, theta, chunk_size=64)
        else:
            a = torch.polar(log_magnitude.exp(), theta).unsqueeze(-1)  # one per head, as the layer passes it
            y, _ = gateloop(q, k, v, a, mode="recurrent", backend="auto")
        y.sum().backward()

    benchmark.pedantic(step, rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("length", [1024, 4096, 16384])
@pytest.mark.parametrize("path", ["compiled recurrent", "rotated chunked"])
def test_gateloop_op_head_dim_64_against_length(benchmark, path, length):
    """head_dim 64, B4, 2 heads, both paths (the compiled loop is the default there on CPU, the rotated
    chunked matmuls on GPUs): time should grow linearly in L."""
    q, k, v, log_magnitude, theta = (t.requires_grad_(True) for t in matrix_state_inputs(4, length, 2, 64))

    def step():
        if path == "rotated chunked":
            y, _ = gateloop_rotated_chunked(q, k, v, log_magnitude, theta, chunk_size=64)
        else:
            y, _ = gateloop(q, k, v, torch.polar(log_magnitude.exp(), theta).unsqueeze(-1), mode="recurrent")
        y.sum().backward()

    benchmark.extra_info["length"] = length
    benchmark.pedantic(step, rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("part", ["layer", "projections", "op"])
def test_gateloop_layer_overhead_max_heads(benchmark, part):
    """Layer forward+backward at B4 L16384 d256 against its parts: the five projections and the op."""
    torch.manual_seed(0)
    layer = models.build("gateloop", d_model=256)
    x = torch.randn(4, 16384, 256, requires_grad=True)
    if part == "layer":
        step = lambda: layer(x).sum().backward()  # noqa: E731
    elif part == "projections":
        linears = [layer.to_qkv, layer.to_transition, layer.to_gate, layer.to_out]
        inner = torch.randn(4, 16384, 256, requires_grad=True)
        step = lambda: sum(lin(x if lin is not layer.to_out else inner).sum() for lin in linears).backward()  # noqa: E731
    else:
        with torch.no_grad():
            q, k, v, a, _ = layer._project(x)
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v, a)]
        step = lambda: gateloop(*leaves, mode="recurrent")[0].sum().backward()  # noqa: E731
    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
