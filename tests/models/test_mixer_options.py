"""Every mixer's option values are checked at construction, the error naming the option and what is valid."""
import pytest

from seqbench import models


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
