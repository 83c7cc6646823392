"""The contract every registered mixer keeps (models/conformance.py), in every mode, at its default
options and at variants that change its structure: small chunks (chunk boundaries inside the test
lengths), extra state (short convolutions), fidelity options. Nothing here enumerates the mixers:
one added by the README's steps is covered at its defaults as it is."""
import pytest

from seqbench import models
from seqbench.models import conformance

# variants: the interface must hold for any options, including those that add state (GateLoop's
# short convolution keeps a window of past projections) and chunk sizes smaller than the sequence
SMALL_OPTIONS = {"gateloop": {"heads": 4, "chunk_size": 5}, "retnet": {"chunk_size": 5}, "linear_attention": {"chunk_size": 5},
                 "s5": {"state_dim": 12}, "mamba": {"d_state": 4}, "gla": {"heads": 2, "chunk_size": 5},
                 "gated_deltanet": {"heads": 2, "chunk_size": 5}, "mamba2": {"d_state": 8, "head_dim": 8, "chunk_size": 5},  # 4 heads sharing B, C
                 "rwkv7": {"head_dim": 4, "chunk_size": 5}}
EXTRA_VARIANTS = [("gateloop", {"heads": 4, "chunk_size": 8, "short_conv": 3}), ("retnet", {"short_conv": 2}),
                  ("linear_attention", {"chunk_size": 8, "short_conv": 4}), ("gla", {"short_conv": 3, "output_gate": False, "chunk_size": 4}),
                  ("gated_deltanet", {"gate": False, "short_conv": 0, "chunk_size": 4}),  # DeltaNet
                  ("gated_deltanet", {"negative_eigenvalues": True, "output_gate": False, "chunk_size": 6}),
                  # fidelity options (docs/sources.md): RetNet's norm and value width, S5's output nonlinearity and B/C init
                  ("retnet", {"norm": "rmsnorm", "value_factor": 1}), ("s5", {"activation": "full_glu", "bc_init": "direct"}),
                  ("s5", {"activation": "half_glu2"}), ("s5", {"activation": "none", "init": "ring", "bc_init": "direct"})]
VARIANTS = [(name, {}) for name in models.available()] + list(SMALL_OPTIONS.items()) + EXTRA_VARIANTS
VARIANT_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items())}" for name, options in VARIANTS]


# the checks every variant runs; training and parameter matching once per mixer, at its defaults
ONCE_PER_MIXER = ("trains", "parameters")
CASES = [pytest.param(name, options, check.id, id=f"{variant_id}-{check.id}")
         for (name, options), variant_id in zip(VARIANTS, VARIANT_IDS)
         for check in conformance.checks(name, options)
         if not (options and check.name in ONCE_PER_MIXER)]


@pytest.mark.parametrize("name,options,check_id", CASES)
def test_the_contract(name, options, check_id):
    """models/conformance.py, the checks `seqbench check` runs on a user's mixer, on every registered one."""
    check = next(c for c in conformance.checks(name, options) if c.id == check_id)
    passed, measured, detail = check.run()
    assert passed, f"{name} {options}: {check_id} failed: {detail} (measured {measured})"


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
