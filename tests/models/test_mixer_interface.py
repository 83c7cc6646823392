"""The contract every registered mixer keeps, in every mode: one function, step = forward, prefill + step."""
import pytest
import torch

from seqbench import models
from tests.helpers import relative_error

D_MODEL = 16
# small options so every mixer runs fast; the interface must hold for any options, including
# those that add state (GateLoop's short convolution keeps a window of past projections)
SMALL_OPTIONS = {"gateloop": {"heads": 4, "chunk_size": 8}}
EXTRA_VARIANTS = [("gateloop", {"heads": 4, "chunk_size": 8, "short_conv": 3}), ("retnet", {"short_conv": 2}),
                  ("linear_attention", {"chunk_size": 8, "short_conv": 4}),
                  # fidelity options (docs/sources.md): RetNet's norm and value width, S5's output nonlinearity and B/C init
                  ("retnet", {"norm": "rmsnorm", "value_factor": 1}), ("s5", {"activation": "full_glu", "bc_init": "direct"}),
                  ("s5", {"activation": "half_glu2"}), ("s5", {"activation": "none", "init": "ring", "bc_init": "direct"})]
VARIANTS = [(name, SMALL_OPTIONS.get(name, {})) for name in models.available()] + EXTRA_VARIANTS
VARIANT_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items())}" for name, options in VARIANTS]


def build(name, options, dtype=torch.float64):
    torch.manual_seed(0)
    return models.build(name, d_model=D_MODEL, **options).to(dtype)


def cases():
    return [pytest.param(name, options, mode, id=f"{variant_id}-{mode}")
            for (name, options), variant_id in zip(VARIANTS, VARIANT_IDS)
            for mode in models.registry.get_class(name).modes]


variants = pytest.mark.parametrize("name,options", VARIANTS, ids=VARIANT_IDS)


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 19, D_MODEL, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name,options,mode", cases())
def test_every_mode_computes_the_default_function(name, options, mode, x):
    mixer = build(name, options)
    expected = mixer(x)
    y, state = mixer(x, mode=mode, return_state=True)
    assert y.shape == x.shape
    assert relative_error(y, expected) < 1e-10


@pytest.mark.parametrize("name,options,mode", cases())
def test_causal(name, options, mode, x):
    mixer = build(name, options)
    changed = x.clone()
    changed[:, 10:] = torch.randn_like(changed[:, 10:])
    assert torch.allclose(mixer(x, mode=mode)[:, :10], mixer(changed, mode=mode)[:, :10], atol=1e-12)


@variants
def test_step_by_step_equals_forward(name, options, x):
    mixer = build(name, options)
    state = mixer.init_state(x.shape[0], dtype=torch.float64)
    outputs = []
    for x_t in x.unbind(1):
        y_t, state = mixer.step(x_t, state)
        outputs.append(y_t)
    assert relative_error(torch.stack(outputs, 1), mixer(x)) < 1e-10


@pytest.mark.parametrize("name,options,mode", cases())
def test_prefill_then_step_equals_forward(name, options, mode, x):
    mixer = build(name, options)
    prefix = 11
    y_prefix, state = mixer(x[:, :prefix], mode=mode, return_state=True)
    outputs = [y_prefix]
    for x_t in x[:, prefix:].unbind(1):
        y_t, state = mixer.step(x_t, state)
        outputs.append(y_t.unsqueeze(1))
    assert relative_error(torch.cat(outputs, 1), mixer(x)) < 1e-10


@variants
def test_float32_modes_agree(name, options):
    mixer = build(name, options, torch.float32)
    x = torch.randn(2, 70, D_MODEL)
    reference = mixer.double()(x.double())
    mixer.float()
    for mode in mixer.modes:
        assert relative_error(mixer(x, mode=mode), reference) < 1e-5, mode


@variants
def test_state_size_is_reported(name, options):
    mixer = build(name, options)
    size = mixer.state_size(seq_len=128)
    assert isinstance(size, int) and size > 0


@variants
def test_bad_mode_and_shapes_raise_clear_errors(name, options, x):
    mixer = build(name, options)
    with pytest.raises(ValueError, match=f"unknown mode 'warp' for mixer '{name}'; valid modes: "):
        mixer(x, mode="warp")
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, length, d_model\) with d_model=16"):
        mixer(x[..., :8])
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, d_model\)"):
        mixer.step(x, mixer.init_state(2))
    with pytest.raises(ValueError, match="empty"):
        mixer(x[:, :0])
    with pytest.raises(TypeError, match="floating-point"):
        mixer(x.long())


def test_registry_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="unknown mixer 'gatelop'; valid mixers: .*gateloop"):
        models.build("gatelop", d_model=8)
    with pytest.raises(ValueError, match="unknown option\\(s\\) 'head' for mixer 'gateloop'; valid options: .*heads"):
        models.build("gateloop", d_model=8, head=2)
    with pytest.raises(ValueError, match="d_model must be a positive integer"):
        models.build("gateloop", d_model=0)


def test_describe_lists_modes_and_option_defaults():
    entry = next(e for e in models.describe() if e["name"] == "gateloop")
    assert entry["modes"] == ["recurrent", "scan", "attention", "chunked"] and entry["default_mode"] == "recurrent"
    assert entry["options"]["state_transition"] == "data" and entry["options"]["heads"] is None
