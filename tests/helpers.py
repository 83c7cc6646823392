import torch


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖, computed in float64 / complex128."""
    expected = expected.to(torch.complex128 if expected.is_complex() else torch.float64)
    actual = actual.to(expected.dtype)
    return ((actual - expected).abs().norm() / expected.abs().norm().clamp_min(1e-300)).item()


def tiny_run_config(**overrides) -> dict:
    """A RunConfig dict that trains in about a second on CPU; overrides merge one level deep."""
    config = {
        "model": {"name": "retnet", "d_model": 16, "n_layers": 1, "mlp_ratio": 0, "options": {"heads": 2}},
        "task": {"name": "mqar", "options": {"vocab_size": 64, "seq_len": 32, "num_pairs": 2,
                                             "validation_examples": 16, "test_examples": 16}},
        "steps": 20, "batch_size": 4, "eval_every": 10, "checkpoint_every": 5, "threads": 1,
    }
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) else value
    return config


TINY_SWEEP = """
name = "{name}"
seeds = [0, 1]

[base]
steps = 20
batch_size = 4
eval_every = 10
checkpoint_every = 5
threads = 1
model = {{ d_model = 16, n_layers = 1, mlp_ratio = 0, options = {{ heads = 2 }} }}
task = {{ name = "mqar", options = {{ vocab_size = 64, seq_len = 32, num_pairs = 2, validation_examples = 16, test_examples = 16 }} }}

[grid]
"model.name" = ["retnet", "linear_attention"]
"""


def write_tiny_sweep(folder, name: str = "tiny"):
    """A sweep file of 4 runs (2 mixers × 2 seeds) that trains in a few seconds on CPU."""
    path = folder / f"{name}.toml"
    path.write_text(TINY_SWEEP.format(name=name))
    return path


def sweep_spec(**changes):
    """A sweep (as data) of tiny runs: 2 mixers × 2 seeds; `changes` replace its keys."""
    spec = {"name": "t", "seeds": [0, 1], "base": tiny_run_config(),
            "grid": {"model.name": ["retnet", "linear_attention"]}}
    spec.update(changes)
    return spec


def outputs_state_and_grads(fn, tensors):
    """An op's (output, final state) and the gradient of every input (zeros where none reaches it) under
    a fixed random weighting of both — the same draws in any dtype, so float32 and float64 compare."""
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    output, state = fn(*leaves)
    generator = torch.Generator().manual_seed(9)
    weights = [torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t.dtype) for t in (output, state)]
    ((output * weights[0]).sum() + (state * weights[1]).sum()).backward()
    return output.detach(), state.detach(), [torch.zeros_like(leaf) if leaf.grad is None else leaf.grad for leaf in leaves]


def assert_op_matches_reference(op, reference, tensors, names, *, skip=()):
    """`op` in float32 within 1e-5 and in float64 within 1e-10 of `reference` in float64: output, final
    state and the gradient of every input named in `names` (but `skip`)."""
    expected_output, expected_state, expected_grads = outputs_state_and_grads(reference, tensors)
    for cast, tolerance in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        output, state, grads = outputs_state_and_grads(op, [t.to(cast) for t in tensors])
        assert relative_error(output, expected_output) < tolerance and relative_error(state, expected_state) < tolerance, cast
        for name, grad, expected in zip(names, grads, expected_grads):
            assert name in skip or relative_error(grad, expected) < tolerance, (name, cast)
